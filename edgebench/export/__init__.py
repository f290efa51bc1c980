"""Export PyTorch modules to deployable artifacts (ONNX) and check them against PyTorch."""
