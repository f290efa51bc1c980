"""edgebench: take a vision model to an edge device and prove it is ready to ship.

Importing this package is cheap on purpose: no torch, onnxruntime or TensorRT is imported
here, so the agent on a device and ``edgebench --help`` work without them.
"""

__version__ = "0.1.0"
