"""lesionloc export: trained checkpoint -> verified ONNX model bundle (fp32, fp16, int8)."""
