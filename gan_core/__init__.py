"""The torch-free core every other package builds on: model card, seeds and latents, feeds, image
encoding, crash-safe file I/O, dataset readers, the ONNX Runtime wrapper and user-facing errors.

Only numpy, pydantic, Pillow and onnxruntime may be imported here (import-linter enforces it), so
the serving container and the augmentation job run without torch.
"""

__version__ = "0.1.0"
