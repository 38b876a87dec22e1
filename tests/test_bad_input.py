"""Hostile or broken input is refused in one line, before anything is written (issue 11, items 9 and 4): YAML
alias bombs, oversized and broken config files, infinite numbers, wrong-typed method_args, bad data files, make-prefs'
numbers and output, and a config changed after it was made."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import flags_of, one_error_line
from fault_helpers import unusable_folders

from alignlab import cli
from alignlab import make_prefs as make_prefs_module
from alignlab.config import MAX_CONFIG_BYTES, RunConfig
from alignlab.errors import AlignLabError
from alignlab.runner import start


def billion_laughs(levels: int = 9) -> str:
    """The classic YAML alias bomb: 9 levels of 9 aliases, ~1 KB that expands to 9**9 strings under run_name."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines + [f"run_name: *lol{levels}", ""])


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    """Run in a child with a time and memory limit: expanding the bomb (a repr in an error message) would hang."""
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    script = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from alignlab.config import RunConfig
        from alignlab.errors import AlignLabError
        try:
            RunConfig.from_file({str(path)!r})
        except AlignLabError as error:
            print(error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == (f"config: {path} line 2 uses the YAML alias *lol0, expected plain values "
                             "(a run config takes no aliases)\n")


def test_yaml_aliases_are_refused_even_small_ones(tmp_path):
    path = tmp_path / "alias.yaml"
    path.write_text("method: &m dpo\nrun_name: *m\n")
    with pytest.raises(AlignLabError, match=r"line 2 uses the YAML alias \*m"):
        RunConfig.from_file(path)
    path.write_text("method: &m dpo\nmax_steps: 3\n")  # an anchor alone expands nothing
    assert RunConfig.from_file(path).max_steps == 3


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_config_file_over_the_size_limit_is_refused_unread(tmp_path, suffix):
    path = tmp_path / f"big{suffix}"
    path.write_text("#" * (MAX_CONFIG_BYTES + 1) if suffix == ".yaml" else " " * (MAX_CONFIG_BYTES - 1) + "{}")
    with pytest.raises(AlignLabError, match=rf"config: {path} is 1,048,577 bytes, expected a run config of at most "
                                            r"1,048,576 bytes"):
        RunConfig.from_file(path)


# --- 9: no traceback: numbers, method_args, config and data files, output folders, ports, make-prefs -------
@pytest.mark.parametrize("flags, field", [
    (["--max-steps", "inf"], "max_steps"), (["--max-steps", "1e400"], "max_steps"),
    (["--learning-rate", "1e400"], "learning_rate"), (["--beta=-inf"], "beta"), (["--epochs", "nan"], "epochs"),
    (["--seed", "1" + "0" * 400], "seed"),
])
def test_infinite_and_overflowing_numbers_are_refused_in_one_line(flags, field, tiny, capsys):
    assert cli.main(["train", "--method", "dpo", *flags_of(tiny), *flags]) == 2
    assert one_error_line(capsys).startswith(f"error: {field}: got ")
    assert not Path(tiny["output_dir"]).exists()


@pytest.mark.parametrize("name, data, expected", [
    ("list-args.json", b'{"method_args": [0.1]}', "error: method_args: got a list"),
    ("string-args.yaml", b"method_args: beta=0.2\n", "error: method_args: got a str"),
    ("dict-knob.yaml", b"beta: {a: 1}\n", "error: beta: got {'a': 1}"),
    ("overflow.json", b'{"max_steps": 1e400}', "error: max_steps: got inf"),
    ("big-int.yaml", b"seed: " + b"9" * 400 + b"\n", "error: seed: got 999"),
    ("binary.yaml", b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "is not UTF-8 text"),
    ("latin-1.yaml", "run_name: café\n".encode("latin-1"), "is not UTF-8 text"),
    ("broken.json", b'{"max_steps": 3', "is not valid YAML/JSON"),
    ("broken.yaml", b"max_steps: [3\nbeta: 1\n", "is not valid YAML/JSON"),
    ("scalar.json", b"42", "expected a mapping"),
    ("scalar.yaml", b"just text\n", "expected a mapping"),
    ("number-key.yaml", b"1: 2\n", "error: config: got the key 1"),
])
def test_a_bad_config_file_is_refused_in_one_line(name, data, expected, tiny, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(data)
    assert cli.main(["train", "--config", str(path), "--output-dir", tiny["output_dir"]]) == 2
    assert expected in one_error_line(capsys)
    assert not Path(tiny["output_dir"]).exists()


def test_method_args_of_the_wrong_type_are_refused_by_the_python_api(tiny):
    for method_args in ([0.1], "beta=0.1", 3, {1: 0.1}, {"beta": [0.1]}):
        with pytest.raises(AlignLabError, match="^(method_args|beta): "):
            RunConfig(method_args=method_args, **tiny)
    with pytest.raises(AlignLabError, match="^method_args: got a list"):
        RunConfig.from_dict({"method_args": ["beta"]})
    with pytest.raises(AlignLabError, match="^config: got a list"):
        RunConfig.from_dict(["beta"])


@pytest.mark.parametrize("name, data", [
    ("empty.csv", b""), ("header-only.csv", b"prompt,chosen,rejected\n"), ("fake.parquet", b"not parquet at all"),
    ("latin-1.jsonl", '{"prompt": "café", "chosen": "a", "rejected": "b"}\n'.encode("latin-1")),
    ("binary.jsonl", bytes(range(256))), ("empty.jsonl", b""), ("scalar.json", b"7"),
])
def test_a_bad_data_file_is_refused_in_one_line(name, data, tiny, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(data)
    assert cli.main(["train", "--method", "dpo", *flags_of({**tiny, "dataset": path})]) == 2
    assert "dataset" in one_error_line(capsys)
    assert not Path(tiny["output_dir"]).exists()
    output = tmp_path / "prefs.jsonl"
    assert cli.main(["data", "make-prefs", "--model", "tiny-random", "--dataset", str(path), "--output",
                     str(output)]) == 2
    assert "dataset" in one_error_line(capsys) and not output.exists()


@pytest.fixture
def no_sampling(monkeypatch):
    """make-prefs without a model: every prompt's completions are "good." and "bad." (scored 1 and 0)."""
    monkeypatch.setattr(make_prefs_module, "load_model", lambda name, *args, **kwargs: None)
    monkeypatch.setattr(make_prefs_module, "load_tokenizer", lambda name, *args, **kwargs: None)

    def sample(model, tokenizer, prompts, settings, num_return_sequences=1, **kwargs):
        return [text for _ in prompts for text in (["good.", "bad."] * num_return_sequences)[:num_return_sequences]]

    monkeypatch.setattr(make_prefs_module, "sample", sample)
    monkeypatch.setattr(make_prefs_module, "get_reward",
                        lambda name: lambda prompts, texts: [float(t == "good.") for t in texts])


@pytest.mark.parametrize("flags, field", [
    (["--max-new-tokens", "0"], "max_new_tokens"), (["--max-new-tokens", "-5"], "max_new_tokens"),
    (["--temperature", "inf"], "temperature"), (["--temperature", "nan"], "temperature"),
    (["--temperature", "-0.5"], "temperature"), (["--top-p", "0"], "top_p"), (["--limit", "-1"], "limit"),
    (["--samples", "1"], "samples"), (["--min-gap", "inf"], "min_gap"),
])
def test_make_prefs_refuses_bad_numbers_before_it_samples(flags, field, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(make_prefs_module, "load_model", lambda name, *args, **kwargs: pytest.fail("loaded a model"))
    output = tmp_path / "prefs.jsonl"
    assert cli.main(["data", "make-prefs", "--model", "tiny-random", "--output", str(output), *flags]) == 2
    assert one_error_line(capsys).startswith(f"error: {field}: got ")
    assert not output.exists()


def test_make_prefs_checks_its_output_before_it_samples(tmp_path, capsys, no_sampling, monkeypatch):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Tell me about the film."}\n{"prompt": "And the acting?"}\n')
    folders = unusable_folders(tmp_path)

    def make(output, *extra):
        return cli.main(["data", "make-prefs", "--dataset", str(prompts), "--samples", "2", "--output", str(output),
                         *extra])

    for output in (folders["file"] / "prefs.jsonl", Path("/proc/prefs.jsonl"), tmp_path):
        assert make(output) == 2
        assert one_error_line(capsys).startswith("error: output: ")
    for extra in ((), ("--force",)):  # its own input: never, not even with --force
        assert make(prompts, *extra) == 2
        assert "is the input dataset" in one_error_line(capsys)
        assert prompts.read_text().startswith('{"prompt": "Tell me')
    output = tmp_path / "prefs.jsonl"
    output.write_text("earlier pairs\n")
    assert make(output) == 2
    assert one_error_line(capsys) == f"error: output: {str(output)!r} already exists; pass --force (force=True) " \
                                     "to replace it"
    assert output.read_text() == "earlier pairs\n"
    assert make(output, "--force") == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(row["chosen"], row["rejected"]) for row in rows] == [("good.", "bad.")] * 2
    assert (tmp_path / "prefs.card.md").exists()


@pytest.mark.parametrize("change, field", [
    (("max_steps", -1), "max_steps"), (("learning_rate", float("inf")), "learning_rate"),
    (("run_name", "../../escape"), "run_name"), (("method_args", ["beta"]), "method_args"),
    (("method_args", {"beta": -1}), "beta"), (("output_dir", "runs\x00x"), "output_dir"),
    (("method", "no-such-method"), "method"),
])
def test_a_config_changed_after_it_was_made_is_checked_again_at_start(change, field, tiny):
    config = RunConfig(**tiny)
    setattr(config, *change)
    with pytest.raises(AlignLabError, match=f"^{field}: "):
        start(config)
    assert not Path(tiny["output_dir"]).exists()
