"""Training side of gan-service (torch): the GAN family, the training loop, checkpoints, evaluation."""

from gan_core import __version__  # noqa: F401  (one version for the whole project)
