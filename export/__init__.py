"""Export trained generators to ONNX files that carry their model card and were checked against torch."""

from export.errors import ExportError
from export.onnx_export import export_checkpoint, export_generator

__all__ = ["ExportError", "export_checkpoint", "export_generator"]
