"""Energy per item recovered by the energy pipeline from tegrastats power replayed at a known rate.

A stand-in ``tegrastats`` (tests/devices/tegrastats_replay.py) prints the real Orin Nano
fixture line at ``--interval``; while the benchmark marks the board busy (warm-up and timed
windows), it prints the same line with VDD_IN cycling through known values. The real pipeline
runs: TegrastatsSampler subprocess + reader thread, PowerTrace idle baseline, Backend.time
windows (null backend: the runtime does not matter to the arithmetic), per-window energy.
Truth: busy mean power x window / items (gross), minus idle (net). Goal: within 2 %.

    python benchmarks/energy_replay.py [--interval-ms 20 50 100] [--duration 3.0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "devices"))

BUSY_MW = (7000, 8200, 9400, 10600)
IDLE_MW = 5704.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval-ms", type=int, nargs="+", default=[20, 50, 100])
    ap.add_argument("--duration", type=float, default=3.0, help="min_duration_s of each timed window")
    args = ap.parse_args()

    import tegrastats_replay

    from edgebench.agent.telemetry import make_sampler
    from edgebench.agent.telemetry.energy import PowerTrace
    from edgebench.backends.null import NullBackend
    from edgebench.backends.options import TimingBudget

    fixture = ROOT / "tests" / "devices" / "tegrastats.txt"
    lines = [ln for ln in fixture.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    nano = next(ln for ln in lines if "VDD_IN 5704mW/5704mW" in ln)
    busy_mean = sum(BUSY_MW) / len(BUSY_MW)
    tmp = Path(tempfile.mkdtemp(prefix="energy-replay-"))
    tegrastats_replay.install(tmp / "bin")
    (tmp / "idle.txt").write_text(nano + "\n")
    (tmp / "busy.txt").write_text(
        "\n".join(nano.replace("VDD_IN 5704mW/5704mW", f"VDD_IN {mw}mW/{mw}mW") for mw in BUSY_MW) + "\n"
    )
    state = tmp / "state"
    state.write_text("idle")
    os.environ["PATH"] = f"{tmp / 'bin'}{os.pathsep}{os.environ['PATH']}"
    os.environ.update(
        EDGEBENCH_REPLAY_IDLE=str(tmp / "idle.txt"),
        EDGEBENCH_REPLAY_BUSY=str(tmp / "busy.txt"),
        EDGEBENCH_REPLAY_STATE=str(state),
    )
    print(
        "| interval ms | batch | mode | window s | samples | power mW (truth "
        f"{busy_mean:.0f}) | idle mW (truth {IDLE_MW:.0f}) | gross mJ/item | error | net mJ/item | error |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    worst = worst_gross = 0.0
    for ms in args.interval_ms:
        sampler = make_sampler("tegrastats", interval_s=ms / 1000.0)
        trace = PowerTrace(sampler)
        windows = []
        with NullBackend(None) as be:
            sampler.start()
            trace.measure_idle(max(1.0, 10 * ms / 1000.0))
            state.write_text("busy")
            for batch in (1, 8):
                feeds = [{"input": np.zeros((batch, 1, 28, 28), dtype=np.float32)}]
                for mode in ("end_to_end", "compute"):
                    budget = TimingBudget(
                        warmup_iters=10,
                        warmup_s=3 * ms / 1000.0,
                        iterations=50,
                        min_duration_s=args.duration,
                        max_iterations=10**9,
                    )
                    res = be.time(feeds, budget, mode=mode)
                    windows.append((batch, mode, res.window, len(res.samples_ms) * batch))
            state.write_text("idle")
            time.sleep(2 * ms / 1000.0)
            sampler.stop()
        for batch, mode, window, items in windows:
            e = trace.energy(window, items)
            w = window[1] - window[0]
            gross_truth = busy_mean * w / items
            net_truth = (busy_mean - IDLE_MW) * w / items
            g_err = (e["gross_mj_per_item"] - gross_truth) / gross_truth
            n_err = (e["net_mj_per_item"] - net_truth) / net_truth
            worst = max(worst, abs(g_err), abs(n_err))
            worst_gross = max(worst_gross, abs(g_err))
            print(
                f"| {ms} | {batch} | {mode} | {w:.3f} | {e['samples']} | {e['power_mean_mw']:.0f} | "
                f"{e['idle_power_mw']:.0f} | {e['gross_mj_per_item']:.6f} | {100 * g_err:+.2f} % | "
                f"{e['net_mj_per_item']:.6f} | {100 * n_err:+.2f} % |"
            )
    print(
        f"\nworst |gross error| {100 * worst_gross:.2f} % (goal <= 2 %): {'met' if worst_gross <= 0.02 else 'NOT met'}"
    )
    print(f"worst |net error| {100 * worst:.2f} %")


if __name__ == "__main__":
    main()
