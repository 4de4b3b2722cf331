"""Export of emotion2vec models to other runtimes (ONNX)."""

from .onnx import OnnxForward, check_onnx, export_onnx

__all__ = ["OnnxForward", "check_onnx", "export_onnx"]
