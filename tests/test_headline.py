"""The headline metrics (the reward and the KL) have one home: alignlab.metrics names them, a MethodSpec declares
its trainer's own, and every table, label, card and plot reads them through it."""

import ast
import json
from pathlib import Path

import alignlab
from alignlab import rundir
from alignlab.methods import get_method, registry
from alignlab.methods.base import headline_of, summary_keys
from alignlab.metrics import PROBE_HEADLINE, PROBE_KL, PROBE_REWARD, ROLLOUT_KL, ROLLOUT_SCORE, headline
from alignlab.panels import frontier_points, frontier_sources

ENGINE = Path(alignlab.__file__).parent


def _spelled(path: Path, names: set[str]) -> set[str]:
    """The ``names`` a module's code spells as string constants (its docstrings left out)."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in names
            and id(node) not in docs}


def test_only_the_metrics_module_spells_the_headline_keys():
    names = set(PROBE_HEADLINE.values()) | {ROLLOUT_SCORE, ROLLOUT_KL}
    spelling = sorted(str(path.relative_to(ENGINE)) for path in ENGINE.rglob("*.py") if _spelled(path, names))
    assert spelling == ["metrics.py"]


def test_headline_takes_the_probe_first_then_the_methods_own_keys():
    row = {"probe/reward": 0.8, "objective/scores": 0.3, "objective/kl": 2.0}
    assert headline(row) == {**dict.fromkeys(PROBE_HEADLINE), "reward": 0.8}
    assert headline_of("ppo", row) == {**dict.fromkeys(PROBE_HEADLINE), "reward": 0.8, "kl": 2.0}
    assert headline_of("no-such-method", {"objective/kl": 2.0})["kl"] is None
    assert summary_keys("dpo")[:2] == ("loss", "rewards/margins") and PROBE_REWARD in summary_keys("dpo")


def test_every_declared_pair_draws_a_frontier_without_the_probe():
    declared = [spec for spec in registry().values() if spec.reward_key and spec.kl_key]
    assert {spec.name for spec in declared} >= {"ppo", "online-dpo", "grpo", "rloo"}
    assert frontier_sources()[0] == (PROBE_KL, PROBE_REWARD)
    for spec in declared:
        rows = [{"step": 1, spec.reward_key: 0.5, spec.kl_key: 1.5}]
        assert frontier_points(rows) == [{"step": 1, "kl": 1.5, "reward": 0.5}], spec.name


def test_a_run_without_the_probe_lists_its_methods_own_reward_and_kl(tmp_path):
    run = tmp_path / "20250101-000000-ppo-ab12"
    run.mkdir()
    (run / rundir.CONFIG).write_text(json.dumps({"method": "ppo", "model": "tiny-random"}))
    (run / rundir.STATUS).write_text(json.dumps({"state": "finished", "step": 2}))
    (run / rundir.METRICS).write_text(json.dumps({"step": 2, "loss": 0.1, ROLLOUT_SCORE: 0.4, ROLLOUT_KL: 3.0}) + "\n")
    summary = rundir.read_run(run)
    assert (summary["reward"], summary["kl"]) == (0.4, 3.0)
    assert get_method("ppo").headline({ROLLOUT_SCORE: 0.4}) == {**dict.fromkeys(PROBE_HEADLINE), "reward": 0.4}
