"""Training side of gan-service: data, the GAN family, the training loop, checkpoints, metrics.

Kept import-light on purpose: `training.card` is read by the torch-free service.
"""

__version__ = "0.1.0"
