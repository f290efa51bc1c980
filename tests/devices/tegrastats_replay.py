"""A stand-in for the ``tegrastats`` binary: prints given tegrastats lines at ``--interval MS``
on an absolute schedule (tick k at start + k * interval), flushing each line as tegrastats does.

Lines come from the file in ``EDGEBENCH_REPLAY_IDLE`` (cycled); while the file named by
``EDGEBENCH_REPLAY_STATE`` reads ``busy``, from ``EDGEBENCH_REPLAY_BUSY`` instead. It invents
nothing: the lines are the real fixture lines (the busy file may carry other VDD_IN values in
the same format). :func:`install` puts it first on PATH under the name ``tegrastats``.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path


def _lines(path: str) -> list[str]:
    return [ln for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def main() -> None:
    ms = int(sys.argv[sys.argv.index("--interval") + 1]) if "--interval" in sys.argv else 1000
    idle = _lines(os.environ["EDGEBENCH_REPLAY_IDLE"])
    busy = _lines(os.environ.get("EDGEBENCH_REPLAY_BUSY") or os.environ["EDGEBENCH_REPLAY_IDLE"])
    state = os.environ.get("EDGEBENCH_REPLAY_STATE")
    start = time.perf_counter()
    k = 0
    while True:
        is_busy = False
        if state:
            try:
                is_busy = Path(state).read_text().strip() == "busy"
            except OSError:
                pass
        lines = busy if is_busy else idle
        print(lines[k % len(lines)], flush=True)
        k += 1
        time.sleep(max(0.0, start + k * ms / 1000.0 - time.perf_counter()))


def install(bindir: Path) -> Path:
    """Write an executable ``tegrastats`` into *bindir* that runs this script; returns it."""
    bindir.mkdir(parents=True, exist_ok=True)
    exe = bindir / "tegrastats"
    exe.write_text(
        f"#!{sys.executable} -S\nimport runpy\nrunpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


if __name__ == "__main__":
    main()
