"""Compression search: Optuna over prune/quantize settings, screened on the host, measured on devices."""
