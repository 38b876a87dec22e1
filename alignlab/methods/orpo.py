"""ORPO over TRL's (experimental) ORPOTrainer.

Odds Ratio Preference Optimization (Hong et al. 2024, "ORPO: Monolithic Preference Optimization
without Reference Model", Eq. 6) adds an odds-ratio penalty to the SFT loss on the chosen answer:

    L = L_SFT(y_w) - λ log σ(log odds(y_w|x) - log odds(y_l|x))

so SFT and alignment happen in one stage and no reference model is kept (λ is TRL's ``beta``).
"""

from alignlab.methods.base import MethodSpec, Panel, beta_knob, register, trl_class

SPEC = register(
    MethodSpec(
        name="orpo",
        title="ORPO",
        summary="SFT on the chosen answer plus an odds-ratio penalty against the rejected one; "
        "one stage, no reference model.",
        paper="Hong et al. 2024, ORPO: Monolithic Preference Optimization without Reference Model (arXiv:2403.07691)",
        data_format="preference",
        config_class=trl_class("trl.experimental.orpo.ORPOConfig"),
        trainer_class=trl_class("trl.experimental.orpo.ORPOTrainer"),
        order=50,
        knobs=(beta_knob(1.0, "λ: weight of the odds-ratio term against the SFT loss (TRL's default is 0.1; "
                             "1.0 here, as measured in the Learn card)."),),
        lesson="TRL's default λ = 0.1 was not visible in workshop time: the odds-ratio term is then small beside the "
        "SFT loss on the chosen reviews, which mostly teaches their style. At λ 1 it keeps the instruction but stays "
        "just short of the faithful side, and a larger λ gains more only by moving further: the SFT term is its only "
        "anchor, as it keeps no reference model",
        panels=(
            Panel("Reward margin", ("rewards/margins",)),
            Panel("Preference accuracy", ("rewards/accuracies",)),
            Panel("Log odds ratio", ("log_odds_ratio",)),
        ),
        uses_reference=False,
    )
)
