"""Does going through SSH change what the agent measures? And does a re-run push anything?

The same ONNX model and the same profile job run on the local device (agent in a subprocess)
and on a loopback SSH device (a throwaway OpenSSH server on 127.0.0.1: the same machine, a
full SSH round trip, the agent shipped as a zipapp). Runs alternate local/ssh to share the
machine's load fairly. Goals: p50 ratio ssh/local within 0.9-1.1 (transport must not leak
into the measurement), and a second run of the same job pushes 0 artifact bytes.

    python benchmarks/ssh_loopback.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_model(folder: Path) -> tuple[Path, Path]:
    """A small real CNN (seeded weights, ~45 MMAC) on 3x32x32 inputs, exported to ONNX, plus real-valued inputs."""
    import torch

    from edgebench.export.onnx import export_onnx

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(64, 128, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(128 * 8 * 8, 10),
    )
    onnx_path = export_onnx(model, folder / "bench.onnx", (1, 3, 32, 32))
    rng = np.random.default_rng(0)
    inputs = folder / "inputs.npz"
    np.savez(inputs, x=rng.random((64, 3, 32, 32), dtype=np.float32))
    return onnx_path, inputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="local/ssh pairs")
    ap.add_argument("--min-duration", type=float, default=1.0, help="timed seconds per run")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from edgebench.devices.inventory import builtin_local
    from edgebench.devices.local import LocalDevice
    from edgebench.devices.ssh import SshDevice

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "devices"))  # the test sshd helper
    from loopback import LoopbackSshd, sshd_missing_reason

    reason = sshd_missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="edgebench-bench-ssh-") as tmp:
        root = Path(tmp)
        model, inputs = build_model(root)
        job = {
            "kind": "profile",
            "artifact": str(model),
            "backend": "onnxruntime",
            "inputs": str(inputs),
            "batches": [1],
            "modes": ["end_to_end"],
            "telemetry": "psutil",
            "options": {"threads": args.threads},
            "budget": {"warmup_iters": 20, "warmup_s": 0.2, "iterations": 200, "min_duration_s": args.min_duration},
        }
        server = LoopbackSshd(root / "sshd").start()
        try:
            local = LocalDevice(builtin_local())
            rows = []
            pushes = []
            for i in range(args.repeat):
                t0 = time.perf_counter()
                lr = local.run_job(job)
                t_local = time.perf_counter() - t0
                with SshDevice(server.spec()) as ssh:  # a fresh connection every time, like separate runs
                    t0 = time.perf_counter()
                    sr = ssh.run_job(job)
                    t_ssh = time.perf_counter() - t0
                    pushes.append(ssh.transfer_stats)
                lp, sp = lr["runs"][0]["latency_ms"]["p50"], sr["runs"][0]["latency_ms"]["p50"]
                rows.append(
                    {
                        "local_p50_ms": lp,
                        "ssh_p50_ms": sp,
                        "ratio": sp / lp,
                        "local_cv": lr["runs"][0]["latency_ms"]["cv"],
                        "ssh_cv": sr["runs"][0]["latency_ms"]["cv"],
                        "local_job_s": t_local,
                        "ssh_job_s": t_ssh,
                    }
                )
                print(
                    f"pair {i + 1}: local p50 {lp:.4f} ms, ssh p50 {sp:.4f} ms, ratio {sp / lp:.3f}; "
                    f"job wall local {t_local:.2f} s, ssh {t_ssh:.2f} s; pushed {pushes[-1]['bytes_pushed']} B"
                )
        finally:
            server.kill()
    ratio = statistics.median(r["ratio"] for r in rows)
    summary = {
        "pairs": rows,
        "median_ratio_ssh_over_local": ratio,
        "first_run_bytes_pushed": pushes[0]["bytes_pushed"],
        "later_runs_bytes_pushed": [p["bytes_pushed"] for p in pushes[1:]],
        "ratio_goal_met": 0.9 <= ratio <= 1.1,
        "second_run_pushes_nothing": all(p["bytes_pushed"] == 0 for p in pushes[1:]),
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "pairs"}, indent=2))
    return 0 if summary["ratio_goal_met"] and summary["second_run_pushes_nothing"] else 1


if __name__ == "__main__":
    sys.exit(main())
