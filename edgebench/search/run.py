"""``edgebench search``: Optuna explores the study's ``search.space``; every trial is a candidate.

1. The listed candidates (at least ``base``) are built and the attacks crafted on base.
2. Trials are asked from a seeded multi-objective Optuna study (NSGA-II or TPE) whose storage
   is a journal file in the run folder (``search.journal``): a re-run loads it and only asks
   for the trials still missing; a trial asked but never told (the run was interrupted) is
   built again from its stored parameters and told.
3. Each trial's artifact is screened on the host (:mod:`edgebench.search.screen`): objectives
   MACs (down), clean accuracy (up), robust accuracy (up), artifact size (down); the accuracy
   and robustness budgets, checked against base on the host, are Optuna constraints.
4. Successive halving, one rung: only the best ``keep`` share of the trials is measured on the
   devices, with the listed candidates, ranked as Optuna's constrained samplers rank them:
   feasible trials first (non-dominated rank over the objectives, then fewest MACs), then the
   infeasible ones by total constraint violation, smallest first. The device numbers give the
   Pareto front and the recommendation (:mod:`edgebench.search.record`).

A trial whose recipe repeats an earlier trial's (Optuna may propose the same parameters twice)
is not built or screened again: it is told the earlier trial's numbers and names its candidate.
Without ``candidates:`` the study holds base and the trials only.

Everything lands in the run folder like ``edgebench run``: resumable, results.json, report.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgebench.compress.prune import FinetuneSpec, PruneSpec
from edgebench.compress.quantize import QuantSpec
from edgebench.errors import EdgebenchError
from edgebench.search.record import TRIALS, pareto_ranks, search_record, violation
from edgebench.study.config import CandidateConfig, StudyConfig
from edgebench.study.pipeline import Pipeline, UiFn, log_only, reread_study
from edgebench.study.search_config import SearchConfig
from edgebench.study.store import RunStore

log = logging.getLogger(__name__)

JOURNAL = "search.journal"
OBJECTIVES: tuple[tuple[str, Any], ...] = (
    ("macs", "minimize"),
    ("clean_accuracy", "maximize"),
    ("robust_accuracy", "maximize"),
    ("size_bytes", "minimize"),
)


class SearchStore(RunStore):
    """A run folder that grows: trials add candidates (an existing one may never change its
    recipe), and the search settings may change (more trials resume the same search). The
    search re-binds the complete trials on every run, so a trial an interrupted run never
    finished drops out of the study (its files stay, unused)."""

    RESUMABLE_CHANGES = ("devices", "budgets", "search", "candidates", "host", *RunStore.ADAPTIVE_KEYS)

    def bind_study(self, study: dict, reread: Callable[[dict], dict] | None = None) -> None:
        old = self.read_json("study.json")
        if old is not None:
            before = {c["name"]: c for c in old.get("candidates", [])}
            now = {c["name"]: c for c in json.loads(json.dumps(study)).get("candidates", [])}
            changed = sorted(n for n in before if n in now and before[n] != now[n])
            if changed:
                raise EdgebenchError(
                    f"{self.root} holds candidate(s) {changed} with another recipe; use another --out folder"
                )
        super().bind_study(study, reread)


def trial_candidate(number: int, params: dict, cfg: StudyConfig) -> CandidateConfig:
    """The candidate a trial's parameters describe, named e.g. ``t007-p40-l1-int8``."""
    ratio = round(float(params["prune_ratio"]), 2)
    prune = None
    if ratio >= 0.01:
        finetune = FinetuneSpec(epochs=int(params["epochs"]))
        prune = PruneSpec(ratio=ratio, criterion=params["criterion"], finetune=finetune)
    quantize = None
    if params["quantize"] != "none":
        quantize = QuantSpec(
            preset=params["quantize"],
            calibration=params["calibration"],
            calib_samples=min(128, cfg.data.calib_count),
        )
    parts = [f"t{number:03d}", f"p{round(ratio * 100)}"]
    if prune is not None:
        parts.append(str(params["criterion"]))
        if params["epochs"]:
            parts.append(f"e{params['epochs']}")
    parts.append("int8" if quantize else "fp32")
    if quantize is not None and params["calibration"] != "minmax":
        parts.append(str(params["calibration"]))
    return CandidateConfig(name="-".join(parts), prune=prune, quantize=quantize)


def _suggest(trial: Any, sc: SearchConfig) -> dict:
    sp = sc.space
    lo, hi = sp.prune_ratio
    params = {"prune_ratio": trial.suggest_float("prune_ratio", lo, hi) if hi > lo else lo}
    for key in ("criterion", "quantize", "calibration", "epochs"):
        choices = list(getattr(sp, key))
        params[key] = trial.suggest_categorical(key, choices) if len(choices) > 1 else choices[0]
    trial.set_user_attr("params", params)  # fixed dimensions too, for a re-built trial
    return params


def _constraints(trial: Any) -> list[float]:
    """Optuna's constraint values (<= 0 is feasible), stored with the trial by :func:`_tell`
    (optuna 4's ``constraints_func``; optuna 5 reads the values the trial sets)."""
    return list(trial.user_attrs.get("constraints", [0.0]))


def _native_constraints(optuna: Any) -> bool:
    """Optuna >= 5: a trial sets its own constraints (``constraints_func`` is deprecated there)."""
    return hasattr(optuna.trial.Trial, "set_constraint")


def _optuna_study(run_dir: Path, cfg: StudyConfig, sc: SearchConfig) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    legacy: dict[str, Any] = {} if _native_constraints(optuna) else {"constraints_func": _constraints}
    with warnings.catch_warnings():
        # optuna 4 calls constraints_func experimental, optuna 5 deprecated: our choice, not the user's news
        for category in (optuna.exceptions.ExperimentalWarning, FutureWarning):
            warnings.filterwarnings("ignore", message=".*constraints_func", category=category)
        if sc.sampler == "nsga2":
            pop = max(2, min(10, sc.trials))
            sampler: Any = optuna.samplers.NSGAIISampler(population_size=pop, seed=cfg.seed, **legacy)
        else:
            sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=4, **legacy)
    storage = JournalStorage(JournalFileBackend(str(run_dir / JOURNAL)))
    return optuna.create_study(
        study_name=f"edgebench-{cfg.name}",
        storage=storage,
        sampler=sampler,
        directions=[d for _, d in OBJECTIVES],
        load_if_exists=True,
    )


def _tell(study: Any, trial: Any, screen: dict, cons: list[float], name: str) -> None:
    """Tell Optuna a trial's host numbers and constraint values (<= 0 is feasible)."""
    import optuna

    if _native_constraints(optuna):
        for i, c in enumerate(cons):  # keys "0", "1", ...: as optuna reads constraints_func's list
            trial.set_constraint(str(i), c)
    trial.set_user_attr("constraints", cons)
    trial.set_user_attr("candidate", name)
    study.tell(trial, [screen[k] if screen[k] is not None else 0.0 for k, _ in OBJECTIVES])


def recipe_key(cand: CandidateConfig) -> str:
    """What a candidate builds, without its name: trials with equal keys build the same artifact."""
    return json.dumps(cand.recipe(), sort_keys=True)


def select_survivors(trials: list[dict], keep: float) -> list[str]:
    """The candidates measured on the devices: the best ``keep`` share (at least one) of the
    distinct candidates, ranked as Optuna's constrained samplers rank trials: feasible ones first
    (non-dominated rank over :data:`OBJECTIVES` among the feasible, then fewest MACs), then the
    infeasible ones by total violation, smallest first."""
    first: dict[str, dict] = {}
    for t in trials:
        first.setdefault(t["name"], t)  # a repeated recipe names its first trial's candidate
    unique = list(first.values())
    if not unique:
        return []
    n = max(1, math.ceil(keep * len(unique)))
    feasible = [t for t in unique if t["feasible"]]
    sign = {"minimize": 1.0, "maximize": -1.0}
    ranks = pareto_ranks([[sign[d] * (t["screen"][k] or 0.0) for k, d in OBJECTIVES] for t in feasible])
    rank = {t["name"]: r for t, r in zip(feasible, ranks)}

    def order(t: dict) -> tuple:
        standing = rank[t["name"]] if t["feasible"] else violation(t)
        return (not t["feasible"], standing, t["screen"]["macs"] or 0, t["number"])

    return [t["name"] for t in sorted(unique, key=order)[:n]]


class Search:
    """One ``edgebench search`` over a run folder, through an engine (local or Ray)."""

    def __init__(self, cfg: StudyConfig, run_dir: Path, engine: Any, ui: UiFn = log_only) -> None:
        if cfg.search is None:
            raise EdgebenchError(
                f"{cfg.source}: expected a 'search:' section (space, trials) for edgebench search, found none"
            )
        self.cfg = cfg
        self.search: SearchConfig = cfg.search
        self.run_dir = Path(run_dir)
        self.engine = engine
        self.ui = ui
        self.listed = list(cfg.candidates)
        self.pipe = Pipeline(cfg, self.run_dir, ui, records={"search": search_record})
        self.pipe.store = SearchStore(self.run_dir)
        self.store = self.pipe.store
        self.trial_cands: dict[str, CandidateConfig] = {}
        self.by_recipe: dict[str, CandidateConfig] = {}  # recipe_key -> the first trial's candidate

    def _rebind(self) -> None:
        cands = tuple(self.listed) + tuple(self.trial_cands.values())
        self.pipe.config = self.cfg.replace(candidates=cands)
        self.store.bind_study(self.pipe.config.to_dict(), reread=reread_study)

    def run(self) -> dict:
        from edgebench.devices.inventory import get_device
        from edgebench.robustness.store import load_folder
        from edgebench.search.screen import screen_artifact

        cfg, sc = self.cfg, self.search
        devices = [get_device(name) for name in cfg.devices]
        self.pipe.prepare()
        study = _optuna_study(self.run_dir, cfg, sc)
        records = {r["number"]: r for r in (self.store.read_json(TRIALS) or [])}
        listed_built = self.engine.build(self.pipe, self.listed)
        attack_sets = self.engine.attacks(self.pipe)
        sets = load_folder(self.store.attacks_dir, inputs=True)
        base = next((b for b in listed_built if b.config.name == "base"), listed_built[0])
        base_screen = screen_artifact(self.run_dir, base.manifest, sets)
        n_done = self._resume(study, records)
        self.ui(
            "task", {"id": "search", "text": f"search: {sc.trials} trials (screened on the host)", "total": sc.trials}
        )
        self.ui("advance", {"id": "search", "by": min(n_done, sc.trials)})
        while n_done < sc.trials:
            batch: list[tuple[Any, dict]] = []
            while len(batch) < min(max(1, self.engine.parallel), sc.trials - n_done):
                trial = study.ask()
                batch.append((trial, _suggest(trial, sc)))
            self._screen_batch(study, batch, records, sets, base_screen)
            n_done += len(batch)
            self.store.write_json(TRIALS, [records[n] for n in sorted(records)])
        self.ui("done", {"id": "search"})
        self._rebind()
        trials = [records[n] for n in sorted(records) if records[n]["name"] in self.trial_cands]
        survivors = select_survivors(trials, sc.keep)
        self.store.write_json(
            "search/screen.json", {"base": base_screen, "survivors": survivors, "keep": sc.keep, "trials": len(trials)}
        )
        to_measure = listed_built + self.engine.build(self.pipe, [self.trial_cands[n] for n in survivors])
        where = ", ".join(cfg.devices)
        self.ui(
            "status", {"text": f"measuring {len(survivors)} of {len(self.trial_cands)} trial candidates on {where}"}
        )
        self.engine.measure(self.pipe, devices, to_measure, attack_sets)
        return self.pipe.write_results(final=True)

    def _candidate(self, number: int, params: dict) -> CandidateConfig:
        """A trial's candidate; a recipe an earlier trial already has names that trial's candidate."""
        cand = trial_candidate(number, params, self.cfg)
        cand = self.by_recipe.setdefault(recipe_key(cand), cand)
        self.trial_cands[cand.name] = cand
        return cand

    def _resume(self, study: Any, records: dict[int, dict]) -> int:
        """The journal's complete trials back as candidates (in trial order, so a repeat maps to
        the same first trial as before); a trial asked by an interrupted run and never told is
        closed as failed, and new trials replace it. Returns the number of complete trials."""
        import optuna

        state = optuna.trial.TrialState
        complete = sorted((t for t in study.trials if t.state == state.COMPLETE), key=lambda t: t.number)
        for t in complete:
            cand = self._candidate(t.number, t.user_attrs["params"])
            if t.number in records:
                records[t.number]["name"] = cand.name
        for t in study.trials:
            if t.state == state.RUNNING:
                study.tell(t.number, state=state.FAIL)
        return len(complete)

    def _screen_batch(
        self, study: Any, batch: list[tuple[Any, dict]], records: dict[int, dict], sets: list, base_screen: dict
    ) -> None:
        """Build and screen a batch of asked trials, then tell Optuna; a trial repeating an earlier
        recipe reuses that build and screen instead of building again."""
        from edgebench.search.screen import screen_artifact

        cands = [self._candidate(trial.number, params) for trial, params in batch]
        screens = {r["name"]: r["screen"] for r in records.values()}
        fresh = list({c.name: c for c in cands if c.name not in screens}.values())
        self._rebind()
        for b in self.engine.build(self.pipe, fresh) if fresh else []:
            screens[b.config.name] = screen_artifact(self.run_dir, b.manifest, sets)
        for (trial, params), cand in zip(batch, cands):
            if not cand.name.startswith(f"t{trial.number:03d}-"):
                self.ui("status", {"text": f"trial {trial.number} repeats {cand.name}: its build and screen reused"})
            screen = screens[cand.name]
            cons = self._constraint_values(screen, base_screen)
            _tell(study, trial, screen, cons, cand.name)
            records[trial.number] = {
                "number": trial.number,
                "name": cand.name,
                "params": params,
                "screen": screen,
                "constraints": cons,
                "feasible": all(c <= 0 for c in cons),
            }
            self.ui("advance", {"id": "search"})

    def _constraint_values(self, screen: dict, base: dict) -> list[float]:
        """Host accuracy and robustness drops against base minus their budgets (<= 0 passes)."""
        b = self.cfg.budgets
        out = []
        if b.max_accuracy_drop is not None:
            out.append(base["clean_accuracy"] - screen["clean_accuracy"] - b.max_accuracy_drop)
        if b.max_robustness_drop is not None and base["robust_accuracy"] is not None:
            out.append(base["robust_accuracy"] - (screen["robust_accuracy"] or 0.0) - b.max_robustness_drop)
        return out or [0.0]
