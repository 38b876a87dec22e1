"""``bench/RESULTS.md``: the summary as tables, with the goals from the benchmark issue beside each figure."""

from __future__ import annotations


def _f(value, fmt: str = ".2f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{suffix}"


def _goal(value, limit, below: bool = True) -> str:
    if value is None:
        return "n/a"
    return "met" if (value <= limit if below else value >= limit) else "**not met**"


def _source(results: dict, section: str) -> list[str]:
    """One line naming the run a section came from, when the file merges several runs."""
    sources = results.get("provenance", {})
    if len({str(v.get("command")) + str(v.get("finished")) for v in sources.values()}) <= 1 or section not in sources:
        return []
    src = sources[section]
    return [f"_From `{src.get('command')}`, finished {src.get('finished')}, load average {src.get('load_avg')}, "
            f"{src.get('threads')} thread(s), {src.get('steps')} steps, {src.get('reps')} rep(s)._", ""]


def markdown(results: dict) -> str:
    s, m = results["summary"], results["machine"]
    lines = [
        "# alignlab benchmarks", "",
        f"Rerun: `{results['command']}` ({results['minutes']} min). Raw per-case results: `bench/results.json`.", "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs ({m['affinity']} usable by this run), torch {m['torch']}, "
        f"CUDA {'yes' if m['cuda'] else 'no'}, AVX2 {'yes' if m['avx2'] else 'no'}, AVX512-BF16 "
        f"{'yes' if m['avx512_bf16'] else 'no'}, AMX {'yes' if m['amx'] else 'no'}. Load average at start "
        f"{m['load_avg_start'][0]:.1f}, at end {m['load_avg_end'][0]:.1f}. Model `{results['settings']['model']}`, "
        f"{results['settings']['threads']} torch thread(s) per case, {results['settings']['steps']} steps per timed "
        f"run, {results['settings']['reps']} A/B repetition(s). Step times are medians over steps after the first.", "",
    ]
    if "overhead" in s:
        o = s["overhead"]
        lines += ["## 1. Runner overhead (DPO, LoRA, same seed and data)", "", *_source(results, "overhead"),
                  "| path | s/step | ratio | goal |", "|---|---:|---:|---|",
                  f"| bare TRL `DPOTrainer` script | {_f(o['step_s']['bare-trl'])} | 1 | |",
                  f"| alignlab runner (bus, JSONL log, status; probe off) | {_f(o['step_s']['alignlab'])} | "
                  f"{_f(o['runner_over_bare'], '.3f')} vs bare | ≤ 1.03: {_goal(o['runner_over_bare'], 1.03)} |",
                  f"| + live subscriber | {_f(o['step_s']['alignlab+subscriber'])} | "
                  f"{_f(o['subscriber_over_runner'], '.3f')} vs runner | ≤ 1.02: "
                  f"{_goal(o['subscriber_over_runner'], 1.02)} |",
                  "| + the notebook's live plotly figure (no browser) | "
                  f"{_f(o['step_s'].get('alignlab+notebook-figure'))} | "
                  f"{_f(o.get('notebook_figure_over_runner'), '.3f')} vs runner | ≤ 1.02: "
                  f"{_goal(o.get('notebook_figure_over_runner'), 1.02)} |",
                  "", f"Same tokens per step in every path: {o['same_tokens']}. TRL config fields that differ "
                  f"(bare, alignlab): {o['config_differences'] or 'none'}."]
        for key, what in (("subscriber_latency_ms", "the subscriber"),
                          ("figure_latency_ms", "its point sent by the live figure")):
            if o.get(key):
                lat = o[key]
                lines += ["", f"Logged metric to {what}: median {lat['median']:.2f} ms, max {lat['max']:.2f} ms "
                          f"over {lat['events']} events."]
        lines.append("")
    if s.get("efficiency"):
        e = s["efficiency"]
        lines += ["## 2. Compute efficiency of a DPO step", "", *_source(results, "efficiency"),
                  f"fp32 matmul peak in this run: {e['matmul_peak_gflops']:.1f} GFLOP/s (best square size; runs "
                  f"{', '.join(f'{p:.1f}' for p in e['matmul_peak_runs_gflops'])}); a matmul shaped like the model's "
                  f"MLP: {e['model_shaped_gflops']:.1f} GFLOP/s. Model: {e['linear_macs_per_token'] / 1e6:.1f} M "
                  "linear MACs per token (lm_head included).", "",
                  "| variant | threads | s/step | model GFLOP/s | fraction of matmul peak | goal ≥ 0.5 |",
                  "|---|---:|---:|---:|---:|---|"]
        for label, v in e["variants"].items():
            if "failed" in v:
                lines.append(f"| {label} | {v['threads']} | failed | | | {str(v['failed'])[:90]} |")
                continue
            lines.append(f"| {label} | {v['threads']} | {_f(v['step_s'])} | {_f(v['gflops'], '.1f')} | "
                         f"{_f(v['fraction_of_peak'], '.2f')} | {_goal(v['fraction_of_peak'], 0.5, below=False)} |")
        if e.get("padding"):
            pad = e["padding"]
            lines += ["", f"Real tokens in a DPO batch of the built-in pairs: {pad['random_batches']:.3f} with random "
                      f"batches, {pad['length_sorted_batches']:.3f} if sorted by length (the most length bucketing "
                      f"could give); {pad['mean_tokens_per_sequence']:.1f} tokens per sequence on average."]
        lines += ["", "Model FLOPs: see `bench.summary.step_flops` (LoRA: the frozen weights need only activation "
                  "gradients; the reference forward counts unless precomputed).", ""]
    if "chat" in s:
        c = s["chat"]
        lines += ["## 3. Side-by-side chat", "", *_source(results, "chat"),
                  "| figure | value | goal |", "|---|---:|---|",
                  "| pair, one batched forward per token pair (default), tokens/s | "
                  f"{_f(c.get('pair_tokens_per_s'), '.1f')} | |",
                  f"| pair, one forward per side, adapter toggled (before), tokens/s | "
                  f"{_f(c.get('per_side_tokens_per_s'), '.1f')} | |",
                  f"| two plain `generate` calls, tokens/s | {_f(c.get('plain_tokens_per_s'), '.1f')} | |",
                  f"| pair / plain speed | {_f(c.get('pair_over_plain'), '.2f')} | ≥ 0.9: "
                  f"{_goal(c.get('pair_over_plain'), 0.9, below=False)} |",
                  f"| per-side pair / plain speed (before) | {_f(c.get('per_side_over_plain'), '.2f')} | |"]
        for kind, mib in c["memory_mib"].items():
            lines.append(f"| peak RSS, {kind.replace('_', ' ')} (MiB) | {mib:.0f} | |")
        lines += [f"| pair / one model memory | {_f(c.get('pair_over_one'))} | "
                  f"≤ 1.1: {_goal(c.get('pair_over_one'), 1.1)} |",
                  f"| two copies / one model memory | {_f(c.get('two_copies_over_one'))} | |", ""]
    if "perl" in s:
        p = s["perl"]
        lines += ["## 4. PERL (LoRA vs full) and RLOO vs PPO", "", *_source(results, "perl"),
                  "| run | s/step | peak RSS (MiB) |", "|---|---:|---:|"]
        for label, row in p["runs"].items():
            lines.append(f"| {label} | {_f(row['step_s'])} | {row['peak_rss_mib']} |")
        lines += ["",
                  f"Full fine-tuning / LoRA: reward model {_f(p.get('reward_full_over_lora_time'))}x time, "
                  f"{_f(p.get('reward_full_over_lora_memory'))}x memory; DPO policy "
                  f"{_f(p.get('dpo_full_over_lora_time'))}x time, {_f(p.get('dpo_full_over_lora_memory'))}x memory.",
                  "",
                  f"PPO / RLOO time per step (8 completions each): {_f(p.get('ppo_over_rloo_time'))}x; RLOO / PPO peak "
                  f"memory: {_f(p.get('rloo_over_ppo_memory'))}x. The seed claim is 2-3x faster and 50-70% less memory "
                  "(0.3-0.5x). Each method at its defaults: PPO takes 4 optimisation epochs per batch, RLOO 1. "
                  "Both use LoRA and take the reference as the policy with its adapter off; PPO also holds a value "
                  "model (a "
                  "second copy of the base weights with its own adapter), RLOO none.", ""]
    if s.get("probe"):
        p = s["probe"]
        lines += ["## 5. Probe overhead and responsiveness (a run at the lab's defaults)", "",
                  *_source(results, "probe"),
                  "| figure | value | goal |", "|---|---:|---|",
                  f"| probes in the run ({p['steps']} steps) | {p['probes']} | |",
                  f"| seconds per probe | {_f(p['probe_s_each'], '.1f')} | |",
                  f"| probe share of training + probing time | {_f(p['probe_fraction_of_run'], '.3f')} | < 0.15: "
                  f"{_goal(p['probe_fraction_of_run'], 0.15)} |",
                  f"| Start to first curve point (the step-0 probe), s | {_f(p['start_to_first_point_s'], '.1f')} | |",
                  f"| Start to first training step, s | {_f(p['start_to_first_step_s'], '.1f')} | |"]
        if p.get("subscriber_latency_ms"):
            lines.append(f"| logged metric to subscriber, median ms | {p['subscriber_latency_ms']['median']:.2f} | |")
        lines.append("")
    if s.get("methods"):
        lines += ["## Every method at its defaults (LoRA, batch 8, probe off)", "", *_source(results, "methods"),
                  "| method | s/step | steps/s | peak RSS (MiB) | state |", "|---|---:|---:|---:|---|"]
        for name, row in s["methods"].items():
            rate = 1 / row["step_s"] if row["step_s"] else None
            lines.append(f"| {name} | {_f(row['step_s'])} | {_f(rate, '.3f')} | {row['peak_rss_mib']} | "
                         f"{row['state']}{' ' + str(row['error'])[:80] if row['error'] else ''} |")
        lines.append("")
    lines += ["## 6. GPU", "", "CUDA available in this run: " + ("yes" if m["cuda"] else "no") + ".", ""]
    if s.get("sampling"):
        lines += _sampling(s["sampling"], _source(results, "sampling"))
    return "\n".join(lines)


def _sampling(p: dict, source: list[str]) -> list[str]:
    packed = p.get("route") == "packed bf16"
    kl = p.get("kl_fp32_to_engine_per_token")
    lines = ["## 7. Sampling speed (tokens/s)", "", *source,
             f"{p['tokens']} new tokens per row, reading settings (temperature 0.7, top-p 0.9), no stop tokens, "
             f"{p['threads']} thread(s), median of {p['reps']} rep(s). Bounds: fp32 matmul peak "
             f"{p['peak_gflops']:.1f} GFLOP/s, bf16 packed-product peak {p.get('peak_gflops_bf16', 0):.1f} GFLOP/s "
             f"and copy bandwidth {p['bandwidth_gb_s']:.1f} GB/s, measured in the same run (definition: "
             "`bench/sampling.py`). The engine's route here: "
             + (f"packed bf16 decoder (`alignlab.packed_decoder`), KL(fp32 ‖ engine) {kl:.4f} nats per token on "
                "sampled rows; its own bound is the bf16 one." if packed and kl is not None else
                "the model's own fp32 forward."), "",
             "| batch | plain `generate` | engine, fp32 forward | engine | fp32 bound | bf16 bound | "
             "packed products alone | engine / own bound | engine / fp32 bound | engine / generate | goal |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for size, row in p["batches"].items():
        goal = (f"≥ 0.6 of bound: {_goal(row['engine_over_bound'], 0.6, below=False)}" if int(size) >= 8 else
                f"≥ 3x generate: {_goal(row['engine_over_generate'], 3.0, below=False)}")
        bf16 = row.get("bound_bf16")
        lines.append(f"| {size} | {row['generate']:.1f} | {_f(row.get('exact'), '.1f')} | {row['engine']:.1f} | "
                     f"{row.get('bound_fp32', row['bound']):.1f} | {_f(bf16, '.1f')} | "
                     f"{_f(row.get('products'), '.1f')} | {row['engine_over_bound']:.2f} | "
                     f"{row.get('engine_over_fp32_bound', row['engine_over_bound']):.2f} | "
                     f"{row['engine_over_generate']:.2f} | {goal} |")
    one = p["batches"].get("1", {})
    if one.get("products"):
        ceiling = one["products"]
        lines += ["", f"The packed products alone take {1000 / ceiling:.1f} ms per token at batch 1: no step on these "
                  f"kernels can beat {ceiling:.1f} tokens/s there, {ceiling / one['generate']:.2f}x `generate`; the "
                  f"engine reaches {one['engine_over_products']:.2f} of that."]
    if p.get("rollouts"):
        r = p["rollouts"]
        lines += ["", f"Rollouts as the online trainers lay them out ({r['rows']} rows: {r['group']} copies of each of "
                  f"{r['rows'] // r['group']} prompts): `generate` {r['generate']:.1f} tokens/s, the trainers' route "
                  f"through the engine (`alignlab.rollouts`, one prefill per prompt) {r['engine']:.1f} tokens/s, "
                  f"{r['engine_over_generate']:.2f}x."]
    e2e, warm = p["end_to_end_tokens_per_s"], p["warmup_s"]
    lines += ["", "End to end, warm-up included (all batch sizes): " + ", ".join(
        f"{label} {e2e[path]:.1f} tokens/s (warm-up {warm[path]:.1f} s)"
        for path, label in (("generate", "`generate`"), ("exact", "engine on the fp32 forward"), ("engine", "engine"))
        if path in e2e) + ".", ""]
    return lines
