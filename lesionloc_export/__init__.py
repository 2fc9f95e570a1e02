"""lesionloc export: trained checkpoint -> verified ONNX model bundle (fp32, fp16, int8)."""

import lesionloc_runtime  # noqa: F401  before onnxruntime: its telemetry off (runtime's privacy.py)
