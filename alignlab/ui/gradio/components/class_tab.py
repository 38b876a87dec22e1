"""Workshop mode in the app: the name box at the top of every page, and the Class tab.

The name box (:func:`create_workshop_bar`) says who the page is: typed once and kept in the browser
(``gr.BrowserState``, so a reload or a new tab of the same browser remembers it), or with ``--auth`` the
signed-in account, fixed. Without ``--auth`` an instructor key box sits beside it: the instructor's name is
taken only with the key the app printed at start (:class:`alignlab.ui.gradio.workshop.Workshop`). Beside them,
the page's own jobs: their place in the queue and when they should start and end
(:func:`alignlab.ui.gradio.workshop.job_times`).

The Class tab (:func:`create_class_tab`) shows the room's results: the leaderboard (per participant, the best
final reward among their finished runs within the KL budget, :func:`alignlab.workshop.leaderboard`), the class
frontier (:func:`alignlab.ui.class_frontier.class_frontier_figure`) and the queue with everyone's position and ETA.
Only the instructor changes the KL budget, and stops or cancels anyone's job by its number; a participant does
so for their own jobs (and, in the Runs tab, deletes or resumes only their own runs). Both refresh every few
seconds.
"""

from __future__ import annotations

from html import escape

import gradio as gr

from alignlab.errors import AlignLabError
from alignlab.ui.class_frontier import class_frontier_figure
from alignlab.ui.format import MISSING, duration
from alignlab.ui.gradio.forms import field_named
from alignlab.ui.gradio.services import Services
from alignlab.ui.gradio.workshop import job_times
from alignlab.workshop import class_points, leaderboard

NAME_KEY = "alignlab-workshop-name"  # where the browser keeps the typed name
REFRESH_S = 5.0
YOURS_REFRESH_S = 2.0
UNKNOWN = "unknown"
LEADERBOARD_COLUMNS = ["rank", "name", "final reward", "KL", "method", "KL knob", "steps", "run"]
QUEUE_COLUMNS = ["position", "name", "job", "method", "model", "steps", "state", "starts in", "done in"]
ASK_NAME = "**Type your name** (then Enter): your runs carry it, and the Class tab ranks people by it."


def when(seconds: float | None) -> str:
    """A time from now as the queue shows it: ``now``, ``~1 min 05 s``, or ``unknown``."""
    if seconds is None:
        return UNKNOWN
    return "now" if seconds < 1 else f"~{duration(seconds)}"


def budget_text(budget: float | None) -> str:
    """The KL budget as its box shows it: the number, or "" for no limit (a number box would show 0)."""
    return "" if budget is None else f"{budget:g}"


def leaderboard_rows(services: Services) -> list[dict]:
    """The leaderboard at the current KL budget (:func:`alignlab.workshop.leaderboard`) over the runs folder."""
    return leaderboard(services.workshop.runs(services.runs), services.workshop.kl_budget)


def leaderboard_table(rows: list[dict]) -> dict:
    """Leaderboard rows as table data; a participant with no run within the budget says so."""
    data = []
    for row in rows:
        if row["rank"] is None:
            data.append([MISSING, row["owner"], f"no run within the KL budget ({row['runs']} finished)", MISSING,
                         MISSING, MISSING, MISSING, MISSING])
        else:
            data.append([row["rank"], row["owner"], f"{row['reward']:+.3f}", f"{row['kl']:.3f}", row["method"],
                         row["kl_setting"] or MISSING, row["steps"], row["run_id"]])
    return {"headers": LEADERBOARD_COLUMNS, "data": data}


def queue_rows(services: Services) -> list[dict]:
    """Every training and waiting job in queue order: position, owner, job number, method, model, steps, state and
    ``starts_in_s`` / ``done_in_s`` (None: unknown until a job of its model has ended here)."""
    times = job_times(services.jobs)
    waiting = [job for job in list(services.jobs.jobs) if job.active or job.state == "queued"]
    rows = []
    for position, job in enumerate(waiting, start=1):
        eta = times.get(job.number)
        rows.append({"position": position, "owner": job.owner, "job": job.number, "method": job.config.method,
                     "model": job.config.model, "steps": job.config.max_steps or None,
                     "state": "training" if job.active else "queued",
                     "starts_in_s": None if eta is None else round(eta[0], 1),
                     "done_in_s": None if eta is None else round(eta[1], 1)})
    return rows


def queue_table(rows: list[dict]) -> dict:
    data = [[row["position"], row["owner"] or MISSING, row["job"], row["method"], row["model"], row["steps"] or MISSING,
             row["state"], when(row["starts_in_s"]), when(row["done_in_s"])] for row in rows]
    return {"headers": QUEUE_COLUMNS, "data": data}


def yours_text(services: Services, user: str | None) -> str:
    """The line beside the name box: who the page is, and where each of their jobs stands in the queue."""
    if not user:
        return ASK_NAME
    role = " (instructor)" if services.workshop.is_instructor(user) else ""
    lines = [f"You are **{escape(user)}**{role}: your runs carry your name."]
    for row in queue_rows(services):
        if row["owner"] == user:
            where = "training" if row["state"] == "training" else \
                f"position {row['position']} in the queue, starts in {when(row['starts_in_s'])}"
            lines.append(f"Job {row['job']} ({row['method']} on {row['model']}): {where}, done in "
                         f"{when(row['done_in_s'])}.")
    return "  \n".join(lines)


def create_workshop_bar(services: Services) -> dict[str, gr.Component]:
    """The name box (and, without accounts, the instructor key box) and the line of the page's own jobs, at the
    top of the page; bound by :func:`create_class_tab`."""
    with gr.Row(equal_height=True, elem_id="workshop-bar"):
        name = gr.Textbox(label="Your name", placeholder="type your name, then Enter", max_length=64, scale=1,
                          elem_id="workshop-name")
        key = gr.Textbox(label="Instructor key (the instructor only)", type="password", max_length=64, scale=0,
                         min_width=220, visible=bool(services.workshop.key), elem_id="workshop-key")
        yours = gr.Markdown(ASK_NAME, elem_id="workshop-yours")
    return {"name": name, "key": key, "yours": yours,
            "stored": gr.BrowserState({"name": "", "key": ""}, storage_key=NAME_KEY)}


def create_class_tab(services: Services, tab: gr.Tab, bar: dict[str, gr.Component], demo: gr.Blocks) -> None:
    """Build the Class tab and bind it and the name box (``bar``) to the workshop state; ``demo`` restores the
    page's name when it loads."""
    workshop = services.workshop
    who = f"the instructor (**{escape(workshop.instructor)}**)" if workshop.instructor else \
        "the instructor (start the app with `--instructor NAME`)"
    gr.Markdown("### Leaderboard\nPer participant, the best final reward among their finished runs whose KL from the "
                f"reference stays within the budget: more reward for no more drift. Only {who} sets the budget.")
    with gr.Row(equal_height=True):
        budget = gr.Textbox(budget_text(workshop.kl_budget), label="KL budget (empty: no limit)", interactive=False,
                            placeholder="no limit", max_lines=1, scale=1, elem_id="class-kl-budget")
        budget_note = gr.Markdown(elem_id="class-kl-budget-note")
    board = gr.Dataframe(interactive=False, wrap=True, max_height=360, elem_id="class-leaderboard")
    frontier = gr.Plot(show_label=False, elem_id="class-frontier")
    gr.Markdown("### Queue\nEveryone's jobs in order, with when each should start and end (from how long recent "
                "jobs of the same model took on this machine; unknown until one has ended).")
    queue = gr.Dataframe(interactive=False, wrap=True, max_height=300, elem_id="class-queue")
    with gr.Row(equal_height=True):
        job_number = field_named(gr.Number(label="Job", precision=0, minimum=1, scale=0, min_width=120,
                                          elem_id="class-job"))
        stop_job = gr.Button("Stop or cancel this job", size="sm", variant="stop", scale=0, elem_id="class-stop-job")
        job_message = gr.Markdown(elem_id="class-job-message")
    shown_budget = gr.State(workshop.kl_budget)
    name, key, yours, stored = bar["name"], bar["key"], bar["yours"], bar["stored"]

    def board_and_frontier():
        rows = leaderboard_rows(services)
        points = class_points(workshop.runs(services.runs))
        return leaderboard_table(rows), class_frontier_figure(points, workshop.kl_budget)

    def refresh(seen):
        """Leaderboard, frontier and queue; the budget box only when the budget changed since this page last saw it
        (so the instructor's typing is never overwritten)."""
        table, figure = board_and_frontier()
        current = workshop.kl_budget
        return table, figure, queue_table(queue_rows(services)), current, \
            (gr.update(value=budget_text(current)) if current != seen else gr.skip())

    outputs = [board, frontier, queue, shown_budget, budget]
    gr.Timer(REFRESH_S).tick(refresh, [shown_budget], outputs, api_visibility="private", show_progress="hidden",
                             concurrency_limit=None)
    tab.select(refresh, [shown_budget], outputs, api_visibility="private", show_progress="hidden")

    # --- who the page is ------------------------------------------------------------------------------
    def page_state(user: str | None, remembered: dict) -> tuple:
        """The line of the page's own jobs, what the browser keeps, and the budget box (the instructor's only)."""
        return yours_text(services, user), remembered, gr.update(interactive=workshop.is_instructor(user))

    def set_name(typed: str, typed_key: str, request: gr.Request):
        """Name this page's participant (with --auth: the account, whatever is typed); their runs carry the name.
        The instructor's name needs the instructor key too (without --auth)."""
        if request.username:
            return request.username, *page_state(request.username, {"name": request.username, "key": ""})
        try:
            user = workshop.set_name(request.session_hash, typed or "", typed_key or "")
        except AlignLabError as error:  # the page keeps whatever name it had
            return gr.skip(), f"✗ {error}", gr.skip(), gr.skip()
        remembered = {"name": user, "key": (typed_key or "") if workshop.is_instructor(user) else ""}
        return user, *page_state(user or None, remembered)

    gr.on([name.submit, name.blur, key.submit], set_name, [name, key], [name, yours, stored, budget],
          api_name="set_name", show_progress="hidden")

    def restore(remembered: dict | None, request: gr.Request):
        """On page load: the account's name (fixed), else the name (and instructor key) this browser remembered."""
        if request.username:
            return gr.update(value=request.username, interactive=False), gr.skip(), \
                *page_state(request.username, {"name": request.username, "key": ""})
        remembered = remembered if isinstance(remembered, dict) else {}
        if not remembered.get("name"):  # nothing kept: leave any name typed meanwhile as it is
            user = services.user(request)
            return gr.skip(), gr.skip(), yours_text(services, user), gr.skip(), \
                gr.update(interactive=workshop.is_instructor(user))
        try:
            user = workshop.set_name(request.session_hash, str(remembered.get("name") or ""),
                                     str(remembered.get("key") or "")) or None
        except AlignLabError:  # e.g. the instructor's key of an earlier start of the app
            user = None
        kept = {"name": user or "", "key": str(remembered.get("key") or "") if workshop.is_instructor(user) else ""}
        return user or "", kept["key"], *page_state(user, kept)

    demo.load(restore, [stored], [name, key, yours, stored, budget], api_visibility="private")

    def own_jobs(request: gr.Request) -> str:
        return yours_text(services, services.user(request))

    gr.Timer(YOURS_REFRESH_S).tick(own_jobs, None, [yours], api_visibility="private", show_progress="hidden",
                                   concurrency_limit=None)

    # --- the instructor's controls -----------------------------------------------------------------------
    def set_budget(value: str, request: gr.Request):
        """Set the leaderboard's KL budget, a number ≥ 0 or "" for no limit (the instructor only; anyone else gets the
        budget back and why)."""
        try:
            current = workshop.set_kl_budget(value, services.user(request))
            note = "✓ KL budget: " + ("no limit" if current is None else f"{current:g}")
        except AlignLabError as error:
            current, note = workshop.kl_budget, f"✗ {error}"
        table, figure = board_and_frontier()
        return budget_text(current), current, note, table, figure

    gr.on([budget.submit, budget.blur], set_budget, [budget], [budget, shown_budget, budget_note, board, frontier],
          api_name="set_kl_budget", show_progress="hidden")

    def stop_or_cancel(number, request: gr.Request) -> str:
        """Stop job ``number`` if it trains, cancel it if it waits: its owner or the instructor only."""
        try:
            job = services.jobs.stop_or_cancel(int(number or 0), services.user(request))
        except (AlignLabError, ValueError, TypeError) as error:
            return f"✗ {error}"
        if job.state == "cancelled":
            return f"✓ Cancelled job {job.number} ({job.owner or 'no name'})."
        return f"✓ Stopping job {job.number} ({job.owner or 'no name'}): it saves what it has."

    stop_job.click(stop_or_cancel, [job_number], [job_message], api_name="stop_job")

    def class_leaderboard() -> list[dict]:
        """The leaderboard at the current KL budget: rank, owner, reward, kl, method, kl_setting, steps, run_id."""
        return leaderboard_rows(services)

    def class_queue() -> list[dict]:
        """Every training and waiting job: position, owner, job, method, model, steps, state and the ETA seconds."""
        return queue_rows(services)

    gr.api(class_leaderboard, api_name="leaderboard")
    gr.api(class_queue, api_name="class_queue")
