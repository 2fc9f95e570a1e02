"""lesionloc training: the image-report model, its global and local losses, data pipelines,
phantom generation and the pretraining loop (PyTorch)."""

import lesionloc_runtime  # noqa: F401  before onnxruntime: its telemetry off (runtime's privacy.py)
