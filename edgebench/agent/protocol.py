"""The job and result format shared by the host and every agent, local or remote.

A job is a JSON object::

    {
      "protocol": 1,
      "kind": "profile" | "predict" | "env",
      "artifact": "model.onnx",            # path on the device
      "backend": "onnxruntime",            # see edgebench.backends.registry
      "options": {"threads": 2, "device": "cpu", "profile_ops": false, "extra": {}},
      "inputs": "inputs.npz",              # profile: real inputs, array "x" (N, C, H, W)
      "batches": [1, 8],                   # profile: batch sizes
      "modes": ["end_to_end", "compute"],  # profile: latencies to measure
      "budget": {"warmup_iters": 10, "warmup_s": 0.2, "iterations": 50,
                 "min_duration_s": 1.0, "max_iterations": 100000},
      "telemetry": "auto" | "none" | "tegrastats" | "jtop" | "nvml" | "psutil",
      "sets": [{"name": "clean", "path": "clean.npz", "key": "x"}],  # predict
      "batch": 64,                         # predict: batch size
      "logits": "logits.npz",              # predict: where logits are written (optional)
      "result": "result.json"              # where the result is written, atomically
    }

A result is ``{"protocol": 1, "kind": ..., "ok": true, "environment": {...}, ...}`` or
``{"ok": false, "error": "one line"}``. Progress lines on stderr look like
``{"event": "progress", "stage": "...", "done": 3, "total": 10}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

PROTOCOL = 1


def progress(stage: str, done: int, total: int, **extra: Any) -> None:
    """Emit one progress line on stderr (the host turns these into progress bars)."""
    msg = {"event": "progress", "stage": stage, "done": done, "total": total, **extra}
    sys.stderr.write(json.dumps(msg) + "\n")
    sys.stderr.flush()


def parse_progress(line: str) -> dict | None:
    """The progress event in *line*, or None if the line is something else (a log line)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        msg = json.loads(line)
    except json.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) and msg.get("event") == "progress" else None


def input_files(job: dict) -> list[str]:
    """Host paths a job reads: the artifact, the inputs, every set. A remote device pushes them."""
    paths = [job[k] for k in ("artifact", "inputs") if job.get(k)]
    paths += [s["path"] for s in job.get("sets") or []]
    return paths
