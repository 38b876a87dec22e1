"""Every registered method trains: parametrised over the registry, so a new method cannot go untested.

Each method trains two steps on tiny-random with its spec's ``tiny_settings``, and must log the metric
keys its own plot panels draw (a panel naming a key the trainer never logs would stay empty), the
probe (for text generators), and save an adapter and reference-vs-aligned samples.
"""

import pytest

from alignlab import rundir
from alignlab.config import RunConfig
from alignlab.methods import get_method, method_names
from alignlab.metrics import PROBE_KEYS, PROBE_KL, PROBE_REWARD
from alignlab.runner import start


def test_discovery_finds_every_method_module():
    from pathlib import Path

    import alignlab.methods as package

    modules = {p.stem for p in Path(package.__file__).parent.glob("*.py") if not p.stem.startswith("_")} - {"base"}
    found = {get_method(name).trainer_class.__module__ for name in method_names()}
    assert len(method_names()) == len(modules) >= 10
    assert found == {"alignlab.methods.base"}  # every method's classes come from the one lazy loader


@pytest.mark.parametrize("method", method_names())
def test_each_registered_method_trains_and_logs_what_its_panels_draw(method, tiny):
    spec = get_method(method)
    config = RunConfig.from_dict({"method": method, **tiny, "max_completion_length": 6, "probe_every": 10,
                                  **spec.tiny_settings})
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    status = rundir.read_status(handle.run_dir)
    assert status["state"] == "finished" and status["step"] == 2
    rows, _ = rundir.read_metrics(handle.run_dir)
    logged = set().union(*rows)
    for panel in spec.panels:
        assert set(panel.keys) & logged, f"{method}: panel {panel.title!r} draws {panel.keys}, none logged"
    panel_keys = {key for panel in spec.panels for key in panel.keys}
    assert [row["step"] for row in rows if panel_keys & set(row)] == [1, 2]
    assert rundir.has_adapter(handle.run_dir)
    assert not rundir.checkpoints_dir(handle.run_dir).exists()  # a finished run keeps no checkpoints
    # the headline: the keys the method declares are logged by its trainer, at every step, without the probe
    own = [key for key in (spec.reward_key, spec.kl_key) if key]
    trained = [row for row in rows if not set(PROBE_KEYS) & set(row) and "loss" in row and "train_loss" not in row]
    for key in own:
        assert [row["step"] for row in trained if row.get(key) is not None] == [1, 2], f"{method}: {key} not logged"
    without_probe = spec.headline(trained[-1])
    assert {field for field, value in without_probe.items() if value is not None} == {
        field for field, key in (("reward", spec.reward_key), ("kl", spec.kl_key)) if key}
    summary = rundir.read_run(handle.run_dir)
    if spec.model_kind == "causal-lm":
        assert [row["step"] for row in rows if PROBE_KL in row] == [0, 2]  # the probe sees the policy
        probed = [row for row in rows if PROBE_KL in row]
        assert (summary["reward"], summary["kl"]) == (probed[-1][PROBE_REWARD], probed[-1][PROBE_KL])  # runs table
        samples = rundir.read_samples(handle.run_dir)
        assert samples and {"reference", "aligned", "aligned_reward"} <= set(samples[0])


@pytest.mark.parametrize("method", [name for name in method_names() if get_method(name).kl_knob])
def test_the_kl_knob_of_a_method_is_one_of_its_knobs_and_reaches_trl(method, tmp_path):
    from alignlab.training import trl_arguments

    spec = get_method(method)
    knob = spec.knob(spec.kl_knob)
    value = knob.default * 2 if knob.default else 0.2
    config = RunConfig.from_dict({"method": method, "model": "tiny-random", **spec.tiny_settings,
                                  spec.kl_knob: value})
    assert trl_arguments(config, tmp_path)[knob.trl_field] == value


@pytest.mark.parametrize("method", method_names())
def test_every_knob_of_a_method_reaches_its_trl_field(method, tmp_path):
    """Each knob's value arrives in the TRL config under the field it names (as it is, unless the method's
    trl_overrides computes that field from it; a field TRL lacks is an error, never dropped), and so do the method's
    trl_defaults."""
    from alignlab.training import trl_arguments

    spec = get_method(method)
    config = RunConfig.from_dict({"method": method, "model": "tiny-random", **spec.tiny_settings})
    arguments = trl_arguments(config, tmp_path)
    overridden = set(spec.trl_overrides(config)) if spec.trl_overrides else set()  # computed from the knobs
    for knob in spec.knobs:
        assert knob.trl_field in arguments, knob.name
        assert knob.trl_field in overridden or arguments[knob.trl_field] == config.method_args[knob.name], knob.name
    for name, value in spec.trl_defaults.items():
        assert name in overridden or arguments[name] == value, name


def test_a_knob_whose_trl_field_does_not_exist_is_an_error_not_dropped(tmp_path, monkeypatch):
    import dataclasses

    from alignlab.errors import AlignLabError
    from alignlab.methods import Knob
    from alignlab.training import trl_arguments

    config = RunConfig(model="tiny-random")
    renamed = dataclasses.replace(config.spec, knobs=(*config.spec.knobs, Knob("old_beta", 0.1, "A renamed field.")))
    monkeypatch.setattr(RunConfig, "spec", property(lambda self: renamed))
    config.method_args["old_beta"] = 0.1
    with pytest.raises(AlignLabError, match=r"^method dpo: DPOConfig has no field old_beta, expected the TRL field"):
        trl_arguments(config, tmp_path)
