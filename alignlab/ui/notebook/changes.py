"""What changed, in the Lab after a run: three held-out prompts, reference vs aligned answer, each with its reward.

The rows come from :func:`alignlab.changes.model_changes`, read from the run's model still in memory (no
reload): prompts picked at random with a fixed seed (not cherry-picked), both models sampled with the same
settings and seed, every answer scored by the run's reward source.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from alignlab.changes import CHANGE_PROMPTS, PICK_SEED, model_changes
from alignlab.methods import generates_text
from alignlab.ui.format import FOLLOWED_CHANGE, MISSING, followed_change

CELL = "text-align:left;vertical-align:top;padding:4px 10px;border-top:1px solid #ddd"


def reward_text(value: float | None) -> str:
    """A reward as the tables show it: signed, three decimals.

    >>> reward_text(0.41234), reward_text(None)
    ('+0.412', '–')
    """
    return MISSING if value is None else f"{value:+.3f}"


def changes_html(rows: list[dict], reward_name: str) -> str:
    """The rows as an HTML table: prompt, the reference's answer and reward, the aligned model's answer and reward,
    and whether each answer followed the prompt's instruction (``yes → no``; blank where the check cannot tell)."""
    head = "<tr>" + "".join(f"<th style='{CELL}'>{cell}</th>" for cell in
                            ("held-out prompt", "reference (before)", "reward", "aligned (after)", "reward",
                             FOLLOWED_CHANGE)) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td style='{CELL}'>{html.escape(str(cell))}</td>" for cell in
                         (row["prompt"], row["reference"], reward_text(row["reference_reward"]), row["aligned"],
                          reward_text(row["aligned_reward"]), followed_change(row))) + "</tr>" for row in rows)
    caption = (f"<b>What changed</b>: {len(rows)} held-out prompts picked at random (seed {PICK_SEED}, not "
               "cherry-picked), answered by the reference and the aligned model with the same seed and settings; "
               f"reward: {html.escape(reward_name)}.")
    return f"<div style='max-width:960px'>{caption}<table style='font-size:90%'>{head}{body}</table></div>"


class ChangesView(widgets.HTML):
    """Shows :func:`changes_html` for a run that has ended (finished or stopped, a method that writes text)."""

    def show(self, handle) -> list[dict]:
        """Sample and show what changed in ``handle``'s model; returns the rows ([] when there is nothing to show:
        a failed run, a method without text, no model in memory). An error is shown in place of the table."""
        if handle.state not in ("finished", "stopped") or not generates_text(handle.config.method) or \
                handle.model is None:
            self.value = ""
            return []
        self.value = (f"<i>What changed: the reference and the aligned model answer {CHANGE_PROMPTS} held-out "
                      "prompts…</i>")
        try:
            rows = model_changes(handle.model, handle.tokenizer, handle.config, handle.held_out.prompts)
        except Exception as error:  # noqa: BLE001 - shown in the Lab; the run itself is saved and done
            self.value = f"<span style='color:#b00'>What changed: cannot sample ({html.escape(str(error))})</span>"
            return []
        self.value = changes_html(rows, handle.config.reward)
        return rows
