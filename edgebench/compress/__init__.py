"""Compress stage: structured/unstructured pruning (Torch-Pruning), ONNX Runtime static INT8.

Modules (import the one you need; this package imports nothing heavy):

- :mod:`edgebench.compress.prune`: :class:`PruneSpec`, :func:`prune`, :func:`parse_prune_spec`
  (which layers are coupled: Torch-Pruning's DependencyGraph; which channels to cut:
  :mod:`edgebench.compress.importance`; how to cut one: Torch-Pruning's pruning functions).
- :mod:`edgebench.compress.quantize`: :class:`QuantSpec`, :func:`quantize_static`,
  :class:`ArrayCalibrationReader`, :func:`parse_quant_spec`.
- :mod:`edgebench.compress.accuracy_control`: :func:`quantize_with_accuracy_control` (INT8 with
  the nodes whose quantization hurts most kept in float until a clean accuracy budget is met),
  :class:`AccuracyControlResult`.
- :mod:`edgebench.compress.finetune`: :class:`FinetuneSpec`, :func:`finetune`, :func:`accuracy`.
- :mod:`edgebench.compress.stats`: parameter, non-zero parameter and MAC counts.
"""
