"""Overhead of edgebench's ``craft()`` over calling foolbox directly (target: within 5 %).

Same model, same data, same attack (PGD Linf, 10 steps, rel_stepsize 0.25, random start),
same epsilons ({2,4,8,16,32}/255), same batch size. Repetitions are interleaved (the order
alternates each repetition) so drift in machine load hits both sides alike. edgebench does
more than foolbox's ``__call__`` returns -- it also records the base predictions on every
adversarial set and on the clean inputs, and converts to numpy -- so the comparison is
deliberately against foolbox *plus nothing*.

The model: a small CNN on scikit-learn's handwritten digits upsampled to 28x28
(MNIST-sized), trained for a few seconds so the attack works on a real decision boundary.

``--attack autoattack`` compares ``craft()`` with an ``{name: autoattack}`` spec against
torchattacks' ``AutoAttack(version="standard")`` called directly (L-inf, eps 8/255 by default).

Run:  python benchmarks/attack_overhead.py [--reps 7] [--n 256] [--threads 1] [--attack pgd|autoattack]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np


def build_model():
    from torch import nn

    class LeNetish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

        def forward(self, x):
            return self.head(self.features((x - 0.3) / 0.4))

    return LeNetish()


def data_and_model(n: int):
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.from_numpy(d.target.astype(np.int64))
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    torch.manual_seed(0)
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xtr, ytr = x[:1400], y[:1400]
    for _ in range(3):
        for i in range(0, len(xtr), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xtr[i : i + 64]), ytr[i : i + 64]).backward()
            opt.step()
    model.eval()
    xe, ye = x[1400 : 1400 + n].numpy().copy(), y[1400 : 1400 + n].numpy().copy()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(xe)).argmax(1).numpy() == ye).mean())
    return model, xe, ye, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--n", type=int, default=256, help="samples attacked")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--attack", choices=("pgd", "autoattack"), default="pgd")
    ap.add_argument("--eps255", type=float, nargs="+", default=None)
    args = ap.parse_args()

    import foolbox as fb
    import torch

    from edgebench.robustness.attacks import AttackSpec, craft

    torch.set_num_threads(args.threads)
    model, x, y, clean_acc = data_and_model(args.n)
    if args.attack == "autoattack":
        eps = tuple(e / 255 for e in (args.eps255 or (8,)))
        spec = AttackSpec("autoattack", "linf", eps)
    else:
        eps = tuple(e / 255 for e in (args.eps255 or (2, 4, 8, 16, 32)))
        spec = AttackSpec("pgd", "linf", eps, steps=10, rel_stepsize=0.25, random_start=True)

    def run_edgebench() -> list[float]:
        sets = craft(model, x, y, spec, batch_size=args.batch, seed=0)
        return [s.base_accuracy for s in sets]

    def run_torchattacks() -> list[float]:
        import torchattacks

        accs = []
        for e in eps:
            torch.manual_seed(0)
            atk = torchattacks.AutoAttack(model, norm="Linf", eps=e, version="standard", n_classes=10, seed=0)
            correct = 0
            for i in range(0, len(x), args.batch):
                xb, yb = torch.from_numpy(x[i : i + args.batch]), torch.from_numpy(y[i : i + args.batch])
                with torch.no_grad():
                    correct += int((model(atk(xb, yb)).argmax(1) == yb).sum())
            accs.append(correct / len(x))
        return accs

    def run_foolbox() -> list[float]:
        if args.attack == "autoattack":
            return run_torchattacks()
        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device="cpu")
        attack = fb.attacks.LinfPGD(steps=10, rel_stepsize=0.25, random_start=True)
        torch.manual_seed(0)
        succ = []
        for i in range(0, len(x), args.batch):
            xb, yb = torch.from_numpy(x[i : i + args.batch]), torch.from_numpy(y[i : i + args.batch])
            _, _, success = attack(fmodel, xb, yb, epsilons=list(eps))
            succ.append(success.numpy())
        return list(1.0 - np.concatenate(succ, axis=1).mean(1))

    # warm-up both (allocator, foolbox/eagerpy first-call costs)
    run_edgebench()
    run_foolbox()
    t_eb: list[float] = []
    t_fb: list[float] = []
    c_eb: list[float] = []  # CPU time of this process: less sensitive to other processes' load
    c_fb: list[float] = []
    acc_eb = acc_fb = None
    for rep in range(args.reps):
        order = (
            (("eb", run_edgebench), ("fb", run_foolbox))
            if rep % 2 == 0
            else (("fb", run_foolbox), ("eb", run_edgebench))
        )
        for name, fn in order:
            t0, c0 = time.perf_counter(), time.process_time()
            acc = fn()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if name == "eb":
                t_eb.append(dt)
                c_eb.append(dc)
                acc_eb = acc
            else:
                t_fb.append(dt)
                c_fb.append(dc)
                acc_fb = acc
    ratios = [a / b for a, b in zip(t_eb, t_fb)]
    med_eb, med_fb = statistics.median(t_eb), statistics.median(t_fb)
    print(
        f"host: {platform.processor() or platform.machine()}, torch threads {args.threads}, torch {torch.__version__}, foolbox {fb.__version__}"
    )
    print(
        f"model: LeNet-ish CNN on digits upsampled to 28x28, clean accuracy {clean_acc:.3f}; "
        f"{len(x)} samples, batch {args.batch}, PGD Linf 10 steps x {len(eps)} epsilons, {args.reps} interleaved reps"
    )
    lib = "torchattacks" if args.attack == "autoattack" else "foolbox"
    print(f"attack: {args.attack}, eps x255: {[round(e * 255, 3) for e in eps]}")
    print(f"{lib} direct : median {med_fb:.3f} s  (min {min(t_fb):.3f}, max {max(t_fb):.3f})")
    print(f"edgebench craft: median {med_eb:.3f} s  (min {min(t_eb):.3f}, max {max(t_eb):.3f})")
    print(
        f"ratio of minimums {min(t_eb) / min(t_fb):.3f} (least disturbed by other load); "
        f"ratio of medians {med_eb / med_fb:.3f}; per-rep ratios median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
    )
    print(
        f"CPU time (process_time): {lib} median {statistics.median(c_fb):.3f} s, edgebench median "
        f"{statistics.median(c_eb):.3f} s, ratio of medians {statistics.median(c_eb) / statistics.median(c_fb):.3f}, "
        f"ratio of minimums {min(c_eb) / min(c_fb):.3f}"
    )
    print("adversarial accuracy per eps  edgebench:", " ".join(f"{a:.3f}" for a in acc_eb or []))
    print(f"adversarial accuracy per eps  {lib}:", " ".join(f"{a:.3f}" for a in acc_fb or []))


if __name__ == "__main__":
    main()
