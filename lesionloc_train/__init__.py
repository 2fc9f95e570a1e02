"""lesionloc training: the image-report model, its global and local losses, data pipelines,
phantom generation and the pretraining loop (PyTorch)."""
