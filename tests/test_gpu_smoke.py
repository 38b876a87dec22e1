"""bench/gpu_smoke.py: its command line, its one-line exit on a machine without CUDA, and (slow) a real pass of the
whole section on the CPU with tiny-random."""

import json
import subprocess
import sys

import pytest

from bench.gpu_smoke import parse_args

torch = pytest.importorskip("torch")


def test_arguments_default_to_a_few_bf16_steps_on_the_default_model():
    args = parse_args([])
    assert (args.model, args.steps, args.dtype, args.cpu) == ("smollm2-135m-instruct", 5, "bf16", False)
    args = parse_args(["--model", "tiny-random", "--steps", "3", "--dtype", "fp32", "--cpu", "--new-tokens", "4"])
    assert (args.model, args.steps, args.dtype, args.cpu, args.new_tokens) == ("tiny-random", 3, "fp32", True, 4)


@pytest.mark.parametrize("argv", [["--steps", "1"], ["--dtype", "fp8"], ["--batch-size", "6"], ["--new-tokens", "0"],
                                  ["--steps", "x"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2 and "python -m bench.gpu_smoke: error:" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the section would measure it")
def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, "-m", "bench.gpu_smoke", "--out", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["gpu_smoke: no CUDA GPU on this machine, nothing measured "
                                        "(--cpu measures on the CPU anyway)"]
    assert not out.exists()


@pytest.mark.slow
def test_the_whole_section_runs_on_the_cpu_with_tiny_random(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, "-m", "bench.gpu_smoke", "--cpu", "--model", "tiny-random", "--steps", "2",
                           "--dtype", "fp32", "--batch-size", "4", "--new-tokens", "4", "--work", str(tmp_path),
                           "--out", str(out)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["gpu"] is False and "NOT A GPU" in done.stdout
    for run in figures["runs"].values():
        assert run["state"] == "finished" and run["steps_timed"] == 1 and run["s_per_step"] > 0
        assert run["peak_memory_gib"] is None  # no GPU memory to report
    assert figures["eval"]["prompts"] > 0 and figures["eval"]["prompts_per_s"] > 0
    assert figures["chat"]["tokens"] > 0 and figures["chat"]["tokens_per_s"] > 0
