"""Waiting in a cell with Stop live: the awaiting wait (ipykernel's public behaviour), the version gate of the
blocking one, the warning when neither can keep Stop live, and a real kernel where a click stops a run."""

import asyncio
import inspect
import json
import queue
import threading
import time
import warnings

import pytest
from conftest import wait_for

from alignlab.rundir import list_runs
from alignlab.ui.notebook import Lab, sweep_async, waiting
from alignlab.ui.notebook.waiting import StopNotLiveWarning

BEFORE_AWAIT = [(6, 29), (7, 3)]  # releases checked to hold widget messages until an awaiting cell ends
FIRST, AFTER = waiting.DISPATCH_VERSIONS


class ConcurrentKernel:
    """The parts of an ipykernel 7.4 kernel the blocking wait uses (the gate reads only their presence)."""

    _parent_ident = session = None

    def dispatch_shell(self, msg, /, subshell_id=None, *, concurrent=False): ...
    def get_parent(self, channel="shell"): ...
    def set_parent(self, ident, parent, channel="shell"): ...


class OlderKernel(ConcurrentKernel):
    """An ipykernel 6 kernel: ``dispatch_shell`` cannot run concurrently."""

    def dispatch_shell(self, msg): ...


# --- the version gate ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [*BEFORE_AWAIT, None])
def test_neither_wait_keeps_stop_live_before_the_first_fitting_ipykernel(version):
    assert not waiting.await_keeps_stop_live(version)
    assert not waiting.dispatch_fits(version, ConcurrentKernel())


def test_from_the_first_fitting_ipykernel_both_waits_serve_widgets():
    assert waiting.await_keeps_stop_live(FIRST) and waiting.dispatch_fits(FIRST, ConcurrentKernel())
    last_known = (AFTER[0] - 1, 99) if AFTER[1] == 0 else (AFTER[0], AFTER[1] - 1)
    assert waiting.dispatch_fits(last_known, ConcurrentKernel())


def test_past_the_known_releases_only_the_awaiting_wait_is_trusted():
    assert waiting.await_keeps_stop_live(AFTER)  # public behaviour: no upper bound
    assert not waiting.dispatch_fits(AFTER, ConcurrentKernel())  # internals: only where they were checked


def test_the_blocking_wait_needs_the_kernel_internals_it_calls():
    assert not waiting.dispatch_fits(FIRST, OlderKernel())
    assert not waiting.dispatch_fits(FIRST, object())


def test_the_installed_ipykernel_keeps_stop_live_both_ways():
    import ipykernel  # noqa: F401 - the gate reads the loaded module's version
    from ipykernel.ipkernel import IPythonKernel

    version = waiting.ipykernel_version()
    assert waiting.await_keeps_stop_live(version)
    assert FIRST <= version < AFTER and "concurrent" in inspect.signature(IPythonKernel.dispatch_shell).parameters


# --- the warning -----------------------------------------------------------------------------------------------
@pytest.fixture
def in_kernel(monkeypatch):
    """Make the waits believe they run in a kernel cell of a chosen ipykernel release; a fresh once-per-process
    warning flag. Returns a function that sets the release."""
    monkeypatch.setattr(waiting, "_warned", threading.Event())
    monkeypatch.setattr(waiting, "running_kernel", ConcurrentKernel)

    def release(version):
        monkeypatch.setattr(waiting, "ipykernel_version", lambda: version)

    return release


def test_a_blocking_wait_past_the_known_releases_warns_once_naming_the_await(in_kernel):
    in_kernel(AFTER)
    with pytest.warns(StopNotLiveWarning, match=r"await lab\.wait_async\(\)") as caught:
        assert waiting.wait_until(lambda: False, timeout=0.06) is False
    assert len(caught) == 1 and f"ipykernel {waiting.dotted(AFTER)}" in str(caught[0].message)
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        waiting.wait_until(lambda: False, timeout=0.06)
        asyncio.run(waiting.wait_until_async(lambda: False, timeout=0.06))
    assert again == []  # once per process


@pytest.mark.parametrize("version", BEFORE_AWAIT)
def test_an_awaiting_wait_on_an_older_ipykernel_warns_to_upgrade(in_kernel, version):
    in_kernel(version)
    with pytest.warns(StopNotLiveWarning, match=f"ipykernel>={waiting.dotted(waiting.AWAIT_SINCE)}"):
        assert asyncio.run(waiting.wait_until_async(lambda: False, timeout=0.06)) is False


def test_waits_that_keep_stop_live_say_nothing(in_kernel):
    in_kernel(FIRST)
    assert waiting.stop_not_live_reason(awaiting=True) is None
    assert waiting.stop_not_live_reason(awaiting=False) is None


def test_outside_a_kernel_both_waits_sleep_silently():
    assert waiting.running_kernel() is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.monotonic()
        assert waiting.wait_until(lambda: False, timeout=0.1) is False
        assert asyncio.run(waiting.wait_until_async(lambda: False, timeout=0.1)) is False
        assert time.monotonic() - started >= 0.2  # each waited out its timeout
        assert asyncio.run(waiting.wait_until_async(lambda: True)) is True
    assert caught == []


# --- the interrupt of an awaiting cell: ipykernel cancels it ---------------------------------------------------
def quick_run(tiny: dict) -> dict:
    return dict(tiny, max_steps=50, probe_every=0)


async def cancel_when(awaitable, condition):
    """Await ``awaitable`` as a task and cancel it once ``condition()`` holds, as ipykernel does to an awaiting
    cell on an interrupt; returns what awaiting the task raised."""
    task = asyncio.ensure_future(awaitable)
    while not condition() and not task.done():
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as raised:
        await task
    return raised.value


def test_cancelling_an_awaiting_lab_wait_stops_the_run_and_saves_it(tiny):
    lab = Lab(method="dpo", **quick_run(tiny))
    handle = lab.start()
    assert handle is not None, lab.form.error.value
    error = asyncio.run(cancel_when(lab.wait_async(), lambda: bool(handle.history)))
    assert str(error).startswith(f"run {handle.run_id} stopped at step")
    assert handle.done and handle.state == "stopped" and 1 <= handle.status["step"] < 50
    assert (handle.run_dir / "model").exists()  # the adapter trained so far is saved


def test_cancelling_an_awaiting_sweep_stops_the_run_in_progress_and_skips_the_rest(tiny):
    settings = quick_run(tiny)
    output_dir = settings["output_dir"]
    running = lambda: any(run["steps"] for run in list_runs(output_dir))  # noqa: E731
    error = asyncio.run(cancel_when(sweep_async("dpo", beta=[0.1, 0.5], show=False, **settings), running))
    assert str(error).endswith("; 1 more not started") and "stopped at step" in str(error)
    runs = list_runs(output_dir)
    assert len(runs) == 1 and runs[0]["state"] == "stopped"


# --- a real kernel: a click on Stop reaches the lab while a cell awaits ---------------------------------------
@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    manager = pytest.importorskip("jupyter_client.manager")
    kernel, client = manager.start_new_kernel(kernel_name="python3", cwd=str(tmp_path_factory.mktemp("kernel")))
    yield kernel, client
    client.stop_channels()
    kernel.shutdown_kernel(now=True)


def run_cell(client, code: str) -> str:
    """Run a cell to its end; its printed text (stdout and stderr)."""
    printed: list[str] = []
    reply = client.execute_interactive(code, timeout=180, output_hook=lambda msg: printed.append(
        msg["content"]["text"]) if msg["msg_type"] == "stream" else None)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(printed)


def outputs_until_idle(client, cells: list[str], seconds: float = 120) -> dict[str, list[tuple[str, str]]]:
    """Each cell's outputs, ``(kind, text)`` (kind: a stream's name or ``error``), once all are idle."""
    outputs: dict[str, list[tuple[str, str]]] = {cell: [] for cell in cells}
    idle: set[str] = set()
    deadline = time.monotonic() + seconds
    while idle != set(cells) and time.monotonic() < deadline:
        try:
            msg = client.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        parent, content = msg["parent_header"].get("msg_id"), msg["content"]
        if parent not in outputs:
            continue
        if msg["msg_type"] == "stream":
            outputs[parent].append((content["name"], content["text"].strip()))
        elif msg["msg_type"] == "error":
            outputs[parent].append(("error", f"{content['ename']}: {content['evalue']}"))
        elif msg["msg_type"] == "status" and content["execution_state"] == "idle":
            idle.add(parent)
    assert idle == set(cells), outputs
    return outputs


def awaiting_cell(client, code: str, marker) -> str:
    """Run ``code``, a cell that awaits, and return its message id once it awaits: the kernel's event loop has run
    a callback the cell scheduled just before its first ``await`` (it touches the file ``marker``)."""
    cell = client.execute(f"import asyncio, pathlib\nasyncio.get_running_loop().call_soon("
                          f"pathlib.Path({str(marker)!r}).touch)\n{code}")
    wait_for(marker.exists, 60, every=0.02, what="the cell awaiting")
    return cell


def click(client, model_id: str) -> None:
    """The comm message a browser sends when a Button is clicked."""
    data = {"method": "custom", "content": {"event": "click"}}
    client.shell_channel.send(client.session.msg("comm_msg", {"comm_id": model_id, "data": data}))


def start_lab(client, tiny: dict, max_steps: int) -> str:
    """In the kernel: a Lab (``lab``) training a tiny-random run (``run``) that has logged a step; its Stop id."""
    settings = json.dumps(dict(tiny, max_steps=max_steps, probe_every=0))
    return run_cell(client, f"import json\nfrom alignlab.ui.notebook import Lab\nfrom alignlab.ui.notebook.waiting "
                            f"import wait_until\nlab = Lab(method='dpo', **json.loads({settings!r}))\n"
                            "run = lab.start()\nwait_until(lambda: bool(run.history) or run.done, 120)\n"
                            "print(lab.stop_button.model_id)").strip()


def test_a_click_reaches_its_widget_while_a_cell_awaits_and_the_next_cell_runs_after(kernel, tmp_path):
    _, client = kernel
    model_id = run_cell(client, "import ipywidgets\nfrom alignlab.ui.notebook.waiting import wait_until_async\n"
                                "clicks = []\nbutton = ipywidgets.Button()\n"
                                "button.on_click(lambda _: clicks.append(1))\nprint(button.model_id)").strip()
    waiting_cell = awaiting_cell(client, "clicked = await wait_until_async(lambda: bool(clicks), 60)\nprint(clicked)",
                                 tmp_path / "awaiting")
    click(client, model_id)
    next_cell = client.execute("print(len(clicks))")
    outputs = outputs_until_idle(client, [waiting_cell, next_cell])
    assert outputs[waiting_cell] == [("stdout", "True")]  # seen during the wait, not at its 60 s timeout
    assert outputs[next_cell] == [("stdout", "1")]


def test_stop_clicked_while_the_cell_awaits_the_lab_stops_the_run(kernel, tiny, tmp_path):
    _, client = kernel
    stop_id = start_lab(client, tiny, max_steps=500)
    waiting_cell = awaiting_cell(client, "print(await lab.wait_async(), run.status['step'])", tmp_path / "awaiting")
    click(client, stop_id)
    printed = outputs_until_idle(client, [waiting_cell])[waiting_cell]
    assert not [text for kind, text in printed if kind == "stderr" and "StopNotLive" in text], printed
    state, step = [text for kind, text in printed if kind == "stdout"][0].split()
    assert state == "stopped" and 1 <= int(step) < 500


def test_interrupting_a_cell_that_awaits_the_lab_stops_the_run_and_says_so(kernel, tiny, tmp_path):
    manager, client = kernel
    start_lab(client, tiny, max_steps=500)
    waiting_cell = awaiting_cell(client, "await lab.wait_async()", tmp_path / "awaiting")
    manager.interrupt_kernel()  # the ■ button
    printed = outputs_until_idle(client, [waiting_cell])[waiting_cell]
    assert printed and printed[-1][0] == "error", printed
    assert printed[-1][1].startswith("CancelledError: run ") and "stopped at step" in printed[-1][1]
    assert run_cell(client, "print(run.state, (run.run_dir / 'model').exists())").split() == ["stopped", "True"]


GATE_REFUSES = """
from alignlab.ui.notebook import waiting
known, waiting.DISPATCH_VERSIONS = waiting.DISPATCH_VERSIONS, (waiting.DISPATCH_VERSIONS[1], (99, 0))
waiting._warned.clear()
try:
    waiting.wait_until(lambda: False, 0.1)
    waiting.wait_until(lambda: False, 0.1)
finally:
    waiting.DISPATCH_VERSIONS = known
"""


def test_a_blocking_wait_the_gate_refuses_warns_once_in_the_cell(kernel):
    printed = run_cell(kernel[1], GATE_REFUSES)
    assert printed.count("StopNotLiveWarning") == 1 and "await lab.wait_async()" in printed
