"""Compress stage: structured/unstructured pruning (Torch-Pruning), ONNX Runtime static INT8.

Modules (import the one you need; this package imports nothing heavy):

- :mod:`edgebench.compress.prune`: :class:`PruneSpec`, :func:`prune`, :func:`prune_with_report`
  (-> :class:`PruneOutcome`: ratios reached, layers left whole and why), :func:`parse_prune_spec`
  (which layers are coupled: Torch-Pruning's DependencyGraph; which channels to cut:
  :mod:`edgebench.compress.importance`; how to cut one: Torch-Pruning's pruning functions).
- :mod:`edgebench.compress.tp_guard`: Torch-Pruning under a time limit, with the groups it cannot
  trace or cut left whole instead of failing the call.
- :mod:`edgebench.compress.quantize`: :class:`QuantSpec`, :func:`quantize_static`,
  :class:`ArrayCalibrationReader`, :func:`parse_quant_spec`.
- :mod:`edgebench.compress.accuracy_control`: :func:`quantize_with_accuracy_control` (INT8 with
  the nodes whose quantization hurts most kept in float until a clean accuracy budget is met),
  :class:`AccuracyControlResult`.
- :mod:`edgebench.compress.finetune`: :class:`FinetuneSpec`, :func:`finetune`, :func:`accuracy`.
- :mod:`edgebench.compress.stats`: parameter, non-zero parameter and MAC counts.
"""
