"""ONNX import: `juanji.onnx.load(path_or_bytes)` turns an ONNX graph into a juanji Module.

Needs the optional `onnx` package (`pip install 'juanji[onnx]'`), imported on first use.
See loader.py for what the imported module does and reader.py for how the file is read.
"""

from juanji.onnx.exporter import export
from juanji.onnx.handlers import SUPPORTED_OPS
from juanji.onnx.loader import OnnxModule, load
from juanji.onnx.reader import OnnxImportError

__all__ = ["OnnxImportError", "OnnxModule", "SUPPORTED_OPS", "export", "load"]
