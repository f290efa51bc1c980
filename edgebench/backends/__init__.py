"""Runtimes that open an artifact and run it.

One module per backend; heavy imports (onnxruntime, torch, tensorrt) happen only inside the
backend module that needs them. :mod:`edgebench.backends.registry` finds them lazily.
"""
