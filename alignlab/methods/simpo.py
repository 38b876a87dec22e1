"""SimPO (and CPO) over TRL's experimental CPOTrainer: preference optimisation without a reference model.

SimPO (Meng et al. 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward", Eq. 6)
takes the length-normalised log-likelihood as the implicit reward and asks the chosen answer to beat
the rejected one by a target margin γ:

    L = -log σ( β/|y_w| log π(y_w|x) - β/|y_l| log π(y_l|x) - γ )

No reference model is kept, so nothing but β and γ holds the policy near where it started. CPO (Xu et
al. 2024, "Contrastive Preference Optimization", Eq. 3 and 6) is the same trainer with the plain DPO-style
sigmoid loss on summed log-probs and a behaviour-cloning (NLL) term on the chosen answer weighted by
``cpo_alpha``: pick ``loss_type=sigmoid`` and ``cpo_alpha=1`` for CPO. The paper's SimPO settings are
β = 2 to 2.5 with γ/β near 0.5; TRL's ``simpo_gamma`` is γ itself.

The lab's defaults add CPO's behaviour-cloning term to SimPO's loss (``cpo_alpha`` 1, the combination TRL's
trainer offers) and train at a learning rate of 3e-4 instead of the lab's 1e-3. Pure SimPO (``cpo_alpha`` 0) on
the built-in task gains the most reward of any offline method but drops the requested opening entirely, far from
the base model (``docs/alignment.md``); the likelihood of the chosen answers, which all begin with the opening,
holds it, as DPO's ``sft_weight`` (RPO) does for DPO.
"""

from alignlab.methods.base import Knob, MethodSpec, Panel, register, trl_class

SPEC = register(
    MethodSpec(
        name="simpo",
        title="SimPO (and CPO)",
        summary="Preference pairs without a reference model: the chosen answer's average log-probability must beat "
        "the rejected one's by a margin γ. CPO is the same trainer with a sigmoid loss plus SFT on the chosen answer.",
        paper="Meng et al. 2024, SimPO: Simple Preference Optimization with a Reference-Free Reward "
        "(arXiv:2405.14734); Xu et al. 2024, Contrastive Preference Optimization (arXiv:2401.08417)",
        data_format="preference",
        config_class=trl_class("trl.experimental.cpo.CPOConfig"),
        trainer_class=trl_class("trl.experimental.cpo.CPOTrainer"),
        knobs=(
            Knob("beta", 2.0, "β: scale of the length-normalised reward difference (SimPO uses 2 to 2.5).",
                 min=0.0, min_exclusive=True, max=100.0, log_scale=True),
            Knob("simpo_gamma", 1.0, "γ: target margin the chosen answer's reward must exceed the rejected one's by "
                 "(SimPO loss only).", min=0.0, max=10.0),
            Knob("loss_type", "simpo", "simpo = SimPO; sigmoid = CPO's loss on summed log-probs; hinge; ipo.",
                 kind="choice", choices=("simpo", "sigmoid", "hinge", "ipo")),
            Knob("cpo_alpha", 1.0, "Weight of the SFT (NLL) term on the chosen answer, CPO's behaviour cloning: "
                 "keeps the instruction the chosen answers follow; 0 = pure SimPO.", min=0.0, max=10.0),
        ),
        panels=(
            Panel("Reward margin (length-normalised)", ("rewards/margins",)),
            Panel("Preference accuracy", ("rewards/accuracies",)),
        ),
        uses_reference=False,
        order=55,
        run_defaults={"learning_rate": 3e-4},
        lesson="pure SimPO (cpo_alpha 0) has no reference model, so nothing holds it back: it converges on stock "
        "praise (\"I am incredibly proud of the amazing film...\") instead of a review of the requested opening, as "
        "the Learn tab's worked example shows; the defaults add CPO's likelihood term on the chosen answers and a "
        "lower learning rate, which keep the opening and the model near where it started",
    )
)
