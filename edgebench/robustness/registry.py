"""The attack registry: every white-box attack of the suite defined once, in :data:`ATTACKS`,
and every attack on a deployed engine (black-box) in :data:`BLACKBOX_ATTACKS`.

An entry says what an attack is called (its study name, aliases, and the title listings use),
which norms it supports and the foolbox class that crafts each, whether it is
*minimal-perturbation* (one run gives each sample its smallest adversarial; epsilons are
optional thresholds) or *fixed-epsilon* (one run per epsilon), the tunable parameters it
accepts with their defaults, and anything extra it needs (a module, starting points, a
per-epsilon crafter). :class:`~edgebench.robustness.attacks.AttackSpec` validates against it,
:func:`~edgebench.robustness.attacks.craft` builds from it, and :data:`DEFAULT_SUITE` is the
suite a study without ``attacks.suite`` gets. Adding an attack is adding one
:class:`AttackDef` (or :class:`BlackBoxDef`, read by :class:`~edgebench.robustness.blackbox.BlackBoxSpec`
and its runner) here.

This module stays light (no torch or foolbox at import): the study config's attack parsing and
``edgebench init`` read it.
"""

from __future__ import annotations

import importlib
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from edgebench.errors import EdgebenchError

if TYPE_CHECKING:
    import torch

NORM_ALIASES = {
    "linf": "linf",
    "inf": "linf",
    "l_inf": "linf",
    "l-inf": "linf",
    "linfinity": "linf",
    "l2": "l2",
    "l1": "l1",
    "l0": "l0",
}

# (model, norm, eps, seed, one example input, the spec's parameters) -> a callable crafting a
# batch: (x, y) -> x_adv
EpsilonCrafter = Callable[
    ["torch.nn.Module", str, float, int, "torch.Tensor", Mapping[str, Any]], Callable[..., "torch.Tensor"]
]


@dataclass(frozen=True)
class Param:
    """A tunable attack parameter (an :class:`AttackSpec` field): its check, and what the error
    message says was expected when a value fails it."""

    check: Callable[[Any], bool]
    expected: str


def _positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1


def _rel_stepsize(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 10


# every parameter any attack may take; an attack's entry picks the ones it accepts
PARAMETERS: dict[str, Param] = {
    "steps": Param(_positive_int, "an integer >= 1"),
    "rel_stepsize": Param(_rel_stepsize, "a number in (0, 10]"),
    "random_start": Param(lambda v: isinstance(v, bool), "true or false"),
    "binary_search_steps": Param(_positive_int, "an integer >= 1"),
}


@dataclass(frozen=True, eq=False)
class AttackDef:
    """One attack, defined once.

    ``foolbox`` maps each supported norm (in the order listings show) to the class in
    ``foolbox.attacks`` that crafts it; it is built with ``fixed`` plus the spec's parameters
    (``defaults`` lists those the attack accepts, with their defaults; names as foolbox takes
    them). ``requires``: a module the attack needs and the pip requirement that brings it.
    ``starts_from_other_class``: each sample starts from the nearest sample of another class
    (attacks that need an adversarial starting point). ``epsilon_crafter``: crafts each epsilon
    instead of the foolbox attack, which then only clips the result to the epsilon ball.
    ``pairwise``: the attack is aimed at the difference between a candidate and the base, so it
    is crafted only white-box, on each candidate's model paired with the base's
    (:class:`~edgebench.robustness.divergence.Paired`), never on the base alone.
    """

    name: str
    title: str
    minimal: bool
    foolbox: Mapping[str, str]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    requires: tuple[str, str] | None = None
    starts_from_other_class: bool = False
    epsilon_crafter: EpsilonCrafter | None = None
    pairwise: bool = False

    @property
    def norms(self) -> tuple[str, ...]:
        return tuple(self.foolbox)

    def require(self) -> None:
        """Raise a one-line error naming the missing module (and how to install it), if any."""
        if self.requires is None:
            return
        module, requirement = self.requires
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise EdgebenchError(
                f"attack {self.name} needs {module} (pip install '{requirement}'), which cannot be imported: {exc}"
            ) from None

    def build(self, norm: str, params: Mapping[str, Any]) -> Any:
        """The foolbox attack for *norm* with *params* (the spec's, defaults filled in)."""
        import foolbox as fb

        self.require()
        return getattr(fb.attacks, self.foolbox[norm])(**self.fixed, **params)


def _autoattack(
    model: torch.nn.Module, norm: str, eps: float, seed: int, example: torch.Tensor, params: Mapping[str, Any]
) -> Any:
    """torchattacks' AutoAttack, standard version, for *model* at *eps* (classes from its output)."""
    import torch
    import torchattacks

    with torch.no_grad():
        n_classes = int(model(example).shape[1])
    return torchattacks.AutoAttack(
        model, norm="Linf" if norm == "linf" else "L2", eps=eps, version="standard", n_classes=n_classes, seed=seed
    )


def _divergence(
    model: torch.nn.Module, norm: str, eps: float, seed: int, example: torch.Tensor, params: Mapping[str, Any]
) -> Any:
    """DIVA-style PGD on a candidate paired with the base (robustness/divergence.py)."""
    from edgebench.robustness.divergence import divergence_crafter

    return divergence_crafter(model, norm, eps, seed, params)


ATTACKS: dict[str, AttackDef] = {
    a.name: a
    for a in (
        AttackDef(
            "fgsm", "FGSM", minimal=False, foolbox={"linf": "LinfFastGradientAttack"}, fixed={"random_start": False}
        ),
        # Madry et al.'s step rule: 2.5 * eps / steps with rel_stepsize 0.25 and 10 steps
        AttackDef(
            "pgd",
            "PGD",
            minimal=False,
            foolbox={"linf": "LinfPGD", "l2": "L2PGD"},
            defaults={"steps": 10, "rel_stepsize": 0.25, "random_start": True},
        ),
        # Croce & Hein 2020, torchattacks' standard version (APGD-CE, APGD-T, FAB-T, Square);
        # nothing tunable, that is the point of AutoAttack. foolbox's PGD only clips its output.
        AttackDef(
            "autoattack",
            "AutoAttack",
            minimal=False,
            foolbox={"linf": "LinfPGD", "l2": "L2PGD"},
            aliases=("auto-attack", "aa"),
            epsilon_crafter=_autoattack,
        ),
        # DIVA (Hong et al. 2021): within eps, raise the candidate's loss on the true label while
        # keeping the base's low -- examples the compressed model gets wrong and the base right.
        # PGD's step rule; crafted white-box on each candidate paired with the base.
        AttackDef(
            "diva",
            "DIVA divergence",
            minimal=False,
            foolbox={"linf": "LinfPGD", "l2": "L2PGD"},
            defaults={"steps": 20, "rel_stepsize": 0.25, "random_start": True},
            aliases=("divergence",),
            epsilon_crafter=_divergence,
            pairwise=True,
        ),
        # foolbox's 10000 steps x 9 binary-search steps is hours on a CPU; 100 x 5 converges on
        # small classifiers (abort_early stops a search step once the loss stalls).
        AttackDef(
            "cw",
            "Carlini-Wagner",
            minimal=True,
            foolbox={"l2": "L2CarliniWagnerAttack"},
            defaults={"steps": 100, "binary_search_steps": 5},
            aliases=("carlini-wagner",),
        ),
        AttackDef(
            "deepfool",
            "DeepFool",
            minimal=True,
            foolbox={"linf": "LinfDeepFoolAttack", "l2": "L2DeepFoolAttack"},
            defaults={"steps": 50},
        ),
        AttackDef(
            "fmn",
            "FMN",
            minimal=True,
            foolbox={"l0": "L0FMNAttack", "l1": "L1FMNAttack", "l2": "L2FMNAttack", "linf": "LInfFMNAttack"},
            defaults={"steps": 100},
        ),
        # foolbox default: 1000 steps; 200 is enough on small inputs and 5x faster. Its
        # trust-region solver is compiled with numba.
        AttackDef(
            "brendel-bethge",
            "Brendel-Bethge",
            minimal=True,
            foolbox={
                "l0": "L0BrendelBethgeAttack",
                "l1": "L1BrendelBethgeAttack",
                "l2": "L2BrendelBethgeAttack",
                "linf": "LinfinityBrendelBethgeAttack",
            },
            defaults={"steps": 200, "binary_search_steps": 10},
            aliases=("bb", "brendel_bethge"),
            requires=("numba", "edgebench[brendel]"),
            starts_from_other_class=True,
        ),
    )
}

_BY_ALIAS = {alias: a for a in ATTACKS.values() for alias in a.aliases}

# the suite a study without ``attacks.suite`` gets (chosen for MNIST/CIFAR-sized inputs):
# FGSM and PGD Linf over {2, 4, 8, 16, 32}/255; PGD L2 over {0.25, 0.5, 1, 2} -- for 28x28
# inputs an L2 radius of 2.0 equals an Linf perturbation of about 18/255 on every pixel.
DEFAULT_SUITE: tuple[Mapping[str, Any], ...] = (
    {"name": "fgsm", "norm": "linf", "eps_255": [2, 4, 8, 16, 32]},
    {"name": "pgd", "norm": "linf", "eps_255": [2, 4, 8, 16, 32]},
    {"name": "pgd", "norm": "l2", "epsilons": [0.25, 0.5, 1.0, 2.0]},
)


@dataclass(frozen=True, eq=False)
class BlackBoxDef:
    """One attack on a deployed engine through its query function, defined once.

    ``decision``: for a decision-based attack (top-1 answers only), its foolbox attack from
    ``(norm, steps, gradient_queries)``, run ``default_steps`` iterations unless the spec says;
    ``None`` for a score-based attack (it reads the engine's logits; Square, via torchattacks).
    """

    name: str
    norms: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    decision: Callable[[str, int, int], Any] | None = None
    default_steps: int = 0


def _hop_skip_jump(norm: str, steps: int, gradient_queries: int) -> Any:
    import foolbox as fb

    constraint: Literal["linf", "l2"] = "linf" if norm == "linf" else "l2"
    return fb.attacks.HopSkipJumpAttack(
        steps=steps, initial_gradient_eval_steps=gradient_queries, constraint=constraint
    )


def _boundary(norm: str, steps: int, gradient_queries: int) -> Any:
    import foolbox as fb

    return fb.attacks.BoundaryAttack(steps=steps)


BLACKBOX_ATTACKS: dict[str, BlackBoxDef] = {
    a.name: a
    for a in (
        # HSJ usually runs out of query budget before its 64 iterations
        BlackBoxDef(
            "hsj",
            ("l2", "linf"),
            aliases=("hopskipjump", "hop-skip-jump"),
            decision=_hop_skip_jump,
            default_steps=64,
        ),
        BlackBoxDef("boundary", ("l2",), decision=_boundary, default_steps=25000),
        BlackBoxDef("square", ("linf", "l2")),
    )
}

_BLACKBOX_BY_ALIAS = {alias: a for a in BLACKBOX_ATTACKS.values() for alias in a.aliases}


D = TypeVar("D")


def _lookup(table: Mapping[str, D], aliases: Mapping[str, D], name: Any, what: str) -> D:
    """The entry of *table* called *name* (case-insensitive; aliases accepted), or one line."""
    key = str(name).lower()
    found = table.get(key) or aliases.get(key)
    if found is None:
        raise EdgebenchError(f"unknown {what} {name!r}; expected one of {sorted(table)}")
    return found


def blackbox_def(name: Any) -> BlackBoxDef:
    """The registered black-box attack called *name* (case-insensitive; aliases accepted)."""
    return _lookup(BLACKBOX_ATTACKS, _BLACKBOX_BY_ALIAS, name, "black-box attack")


def attack_def(name: Any) -> AttackDef:
    """The registered attack called *name* (case-insensitive; aliases accepted)."""
    return _lookup(ATTACKS, _BY_ALIAS, name, "attack")


def normalize_norm(norm: Any) -> str | None:
    """The canonical norm name (``linf``, ``l2``, ``l1``, ``l0``) or ``None`` if unknown."""
    return NORM_ALIASES.get(str(norm).lower().replace(" ", ""))


def describe_attacks() -> str:
    """One line listing every attack (name, title, norms) by kind, for the README and ``edgebench init``."""
    kinds = (("fixed epsilon", False), ("minimal perturbation", True))
    return "; ".join(
        f"{label}: "
        + ", ".join(f"{a.name} ({a.title}; {'/'.join(a.norms)})" for a in ATTACKS.values() if a.minimal == minimal)
        for label, minimal in kinds
    )
