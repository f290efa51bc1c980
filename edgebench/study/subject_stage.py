"""The subject stage: the study's base model and data, loaded and written to the run folder."""

from __future__ import annotations

from edgebench.study.context import RunContext
from edgebench.study.engines import PREDICT_BATCH
from edgebench.subject.zoo import Subject, load_subject


def prepare_subject(run: RunContext) -> Subject:
    """The base model and data (:func:`edgebench.subject.zoo.load_subject`), a converted model
    checked at every batch the study uses; the evaluation images, the base's outputs and
    ``subject.json`` written to the run folder."""
    cfg = run.config
    run.ui("status", {"text": f"subject: {cfg.model.kind} {cfg.model.spec} on {cfg.data.label}"})
    batches = tuple(sorted({1, PREDICT_BATCH, *cfg.profile.batches}))
    subject = load_subject(
        cfg.model, cfg.data, cfg.seed, on_status=lambda t: run.ui("status", {"text": t}), batches=batches
    )
    split = subject.split
    run.torch_ok = subject.model is not None
    if subject.torch_reason is not None:
        run.ui(
            "status",
            {
                "text": f"no PyTorch module ({subject.torch_reason}): pruned candidates, transfer and white-box "
                "attacks are UNMEASURED; base, INT8 of base, profiles, clean accuracy and black-box attacks run"
            },
        )
    if run.store.load_arrays("eval") is None:
        run.store.save_arrays("eval", x=split.x_eval, y=split.y_eval)
    if run.store.load_arrays("base_logits") is None:  # log-probabilities for a probability model
        run.store.save_arrays("base_logits", logits=subject.logits(split.x_eval))
    n_attack = min(cfg.attacks.samples, len(split.x_eval))
    info = dict(subject.info, attack_count=n_attack)
    run.store.write_json("subject.json", info)
    return subject


__all__ = ["prepare_subject"]
