"""Measurement primitives: latency statistics. Depends only on numpy (shipped to devices)."""
