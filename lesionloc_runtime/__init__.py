"""lesionloc runtime: torch-free lesion localization in chest radiographs from report sentences
(ONNX Runtime, numpy, OpenCV, pydicom, tokenizers)."""

__version__ = "0.1.0"
