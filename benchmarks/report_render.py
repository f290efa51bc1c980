"""How long rendering report.md + report.html takes, cold (new process, matplotlib import
included) and warm (in a process that already rendered once), on the report test fixture.

    python benchmarks/report_render.py [--repeat 5]

Goal: < 2 s cold per render for a 4-candidate, 1-device, 7-attack run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "report" / "data" / "results.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        shutil.copy(FIXTURE, run / "results.json")
        cold = []
        for _ in range(args.repeat):
            code = (
                "import time; t = time.perf_counter(); from edgebench.report import render_report;"
                f"render_report({str(run)!r}); print(time.perf_counter() - t)"
            )
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            cold.append(float(out.stdout.strip()))
        from edgebench.report import render_report

        render_report(run)
        warm = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            render_report(run)
            warm.append(time.perf_counter() - t)
        size = (run / "report.html").stat().st_size
    print(f"cold render (import + render): median {statistics.median(cold):.2f} s, min {min(cold):.2f} s")
    print(f"warm render:                   median {statistics.median(warm):.2f} s, min {min(warm):.2f} s")
    print(f"report.html size: {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
