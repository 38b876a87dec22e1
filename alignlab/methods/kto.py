"""KTO over TRL's KTOTrainer.

Kahneman-Tversky Optimization (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic
Optimization", Eq. 8) needs only a binary good/bad label per completion: a prospect-theory value
function around a reference point (the KL of policy to reference) with loss aversion set by the
desirable/undesirable weights. Pairs are split into one good and one bad example each.
"""

from alignlab.methods.base import Knob, MethodSpec, Panel, beta_knob, register, trl_class
from alignlab.metrics import KL_ESTIMATE

SPEC = register(
    MethodSpec(
        name="kto",
        title="KTO",
        summary="Learns from single completions labelled good or bad (no pairs needed), weighting "
        "losses more than gains like prospect theory.",
        paper="Ethayarajh et al. 2024, KTO: Model Alignment as Prospect Theoretic Optimization (arXiv:2402.01306)",
        data_format="unpaired",
        config_class=trl_class("trl.KTOConfig"),
        trainer_class=trl_class("trl.KTOTrainer"),
        kl_knob="beta",
        kl_key=KL_ESTIMATE,
        order=40,
        lesson="at its defaults it is visible at every seed and keeps the requested opening (the desirable reviews "
        "all begin with it, and KTO raises their likelihood against the reference), but at 11-12 nats of KL, just "
        "past the 10 a faithful run may spend; a lower learning rate holds the KL, and then fewer reviews begin "
        "with the opening. No single setting tried put it on the faithful side",
        knobs=(
            beta_knob(0.1),
            Knob("desirable_weight", 1.0, "Weight of the loss on good examples (λ_D).", min=0.0, min_exclusive=True,
                 max=10.0),
            Knob("undesirable_weight", 1.0, "Weight of the loss on bad examples (λ_U).", min=0.0, min_exclusive=True,
                 max=10.0),
        ),
        panels=(
            Panel("Implicit rewards", ("rewards/chosen", "rewards/rejected")),
            Panel("KL estimate", ("kl",)),
        ),
    )
)
