"""Serving side: ONNX Runtime + numpy only. Nothing under service/ may import torch."""
