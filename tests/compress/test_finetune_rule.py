"""The fine-tuning epochs `init` writes for the data size, and the note a pruned candidate gets
when its accuracy fell after shorter fine-tuning than that."""

from __future__ import annotations

from edgebench.compress.finetune import EPOCH_RULE, short_finetune_note, suggested_epochs


def test_epochs_follow_the_number_of_training_images() -> None:
    assert [suggested_epochs(n) for n in (0, 10, 64, 167, 500, 771, 5000, 60000)] == [0, 30, 30, 30, 10, 7, 1, 1]
    assert EPOCH_RULE == "epochs = 5000 / training images, rounded up, between 1 and 30"


def test_a_large_drop_after_short_finetuning_gets_a_note() -> None:
    note = short_finetune_note(1, 64, 0.938, 0.18)
    assert note == (
        "accuracy 18.0% after pruning vs 93.8% for base, with 1 fine-tuning epoch(s) on 64 training images: "
        f"fine-tuning was short, try prune.finetune.epochs: 30 ({EPOCH_RULE})"
    )
    assert short_finetune_note(30, 64, 0.938, 0.18) is None  # the rule's epochs: the drop is the pruning's
    assert short_finetune_note(1, 64, 0.938, 0.90) is None  # a small drop needs no explanation
    assert "no training images to fine-tune on" in (short_finetune_note(0, 0, 0.9, 0.5) or "")
