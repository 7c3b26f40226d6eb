"""Serving side: BentoML over ONNX Runtime + numpy, built on gan_core only. Nothing here imports torch."""
