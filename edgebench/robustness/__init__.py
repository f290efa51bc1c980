"""Robustness stage: craft adversarial sets on the base model, store them as float32 ``.npz``,
score candidates on them, and run a decision-based black-box attack on a deployed engine.

Submodules (import them directly; this package stays light so ``import edgebench`` does not
pull in torch or foolbox):

* :mod:`edgebench.robustness.registry` -- every white-box attack defined once (``ATTACKS``, ``DEFAULT_SUITE``)
* :mod:`edgebench.robustness.attacks`  -- :class:`AttackSpec`, :func:`craft` (foolbox 3; AutoAttack via torchattacks)
* :mod:`edgebench.robustness.advset`   -- :class:`AdversarialSet`, what crafting returns and the store saves
* :mod:`edgebench.robustness.fakequant` -- the white-box model of an artifact (fp32 graph, INT8 fake-quant STE)
* :mod:`edgebench.robustness.sanity`   -- sanity checks (gradient masking)
* :mod:`edgebench.robustness.store`    -- save/load of sets, resumable crafting
* :mod:`edgebench.robustness.metrics`  -- Wilson intervals, transfer success, fidelity, AUC (numpy)
* :mod:`edgebench.robustness.blackbox` -- HopSkipJump / Boundary through a query function
"""
