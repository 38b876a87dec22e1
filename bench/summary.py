"""Turn the raw case results into the figures and ratios the report quotes (medians, never best runs)."""

from __future__ import annotations

from statistics import median

# Names and paths, and the checkpoint cadence, which does nothing while save_strategy (compared) is "no".
IGNORED_ARGS = {"output_dir", "logging_dir", "num_train_epochs", "run_name", "save_steps", "save_total_limit"}
BATCH = 8  # every training case uses alignlab's default batch size


def steady(times: list[float]) -> list[float]:
    """Step times without the first (warm-up: allocator, lazy init)."""
    return times[1:] if len(times) > 2 else times


def pooled_median(rows: list[dict], label: str) -> float | None:
    times = [t for r in rows if r["label"] == label and r.get("state") == "finished" for t in steady(r["step_times"])]
    return median(times) if times else None


def _ratio(a, b):
    return a / b if a and b else None


def overhead(rows: list[dict]) -> dict:
    bare, runner, live, figure = (pooled_median(rows, k) for k in
                                  ("bare-trl", "alignlab", "alignlab+subscriber", "alignlab+notebook-figure"))
    first = {r["label"]: r for r in rows}
    diffs = {}
    if "bare-trl" in first and "alignlab" in first:
        a, b = first["bare-trl"].get("trl_args", {}), first["alignlab"].get("trl_args", {})
        diffs = {k: [a.get(k), b.get(k)] for k in set(a) | set(b) if k not in IGNORED_ARGS and a.get(k) != b.get(k)}
    tokens = {r["label"]: r.get("tokens_per_step") for r in rows}
    return {"step_s": {"bare-trl": bare, "alignlab": runner, "alignlab+subscriber": live,
                       "alignlab+notebook-figure": figure},
            "runner_over_bare": _ratio(runner, bare), "subscriber_over_runner": _ratio(live, runner),
            "notebook_figure_over_runner": _ratio(figure, runner),
            "config_differences": diffs, "same_tokens": len({str(t) for t in tokens.values() if t}) == 1,
            "subscriber_latency_ms": _latency([r for r in rows if r["label"] == "alignlab+subscriber"]),
            "figure_latency_ms": _latency([r for r in rows if r["label"] == "alignlab+notebook-figure"])}


def _latency(rows: list[dict]) -> dict | None:
    values = [v * 1000 for r in rows for v in r.get("subscriber_latency_s", [])]
    return {"median": median(values), "max": max(values), "events": len(values)} if values else None


def step_flops(shape: dict, tokens: float, lora: bool = True, reference: bool = True) -> float:
    """Model FLOPs of one DPO step on ``tokens`` tokens (chosen + rejected, no padding).

    Forward of the linear layers is 2·MACs per token. With LoRA the frozen weights need only the
    activation gradient in the backward pass (1 forward's worth), the adapters need both (2); full
    fine-tuning needs both for every weight. The reference forward (skipped when its log-probs are
    precomputed) is one more forward. Attention scores add 4·layers·width·T per token forward, T
    the mean sequence length (``tokens / 2·batch``).
    """
    linear = 2 * shape["linear_macs_per_token"]
    adapters = 2 * shape["lora_macs_per_token"] if lora else 0
    attention = 4 * shape["layers"] * shape["attention_width"] * tokens / (2 * BATCH)
    policy = (linear + attention) * (2 if lora else 3) + adapters * 3
    return tokens * (policy + (linear + attention if reference else 0))


def achieved(shape: dict, run: dict, lora: bool = True, reference: bool = True) -> float | None:
    """Median over steady steps of model FLOPs / wall seconds."""
    times, tokens = run.get("step_times", []), run.get("tokens_per_step", [])
    rates = [step_flops(shape, tokens[i + 1], lora, reference) / t for i, t in enumerate(times) if i + 1 < len(tokens)]
    rates = steady(rates)
    return median(rates) if rates else None


def efficiency(rows: list[dict], overhead_rows: list[dict]) -> dict:
    shape = next((r for r in rows if r["label"] == "model-shape"), None)
    peaks = [r["peak_flops"] for r in rows if r["label"] == "matmul-peak"]
    if not shape or not peaks:
        return {}
    peak = max(peaks)
    out = {"matmul_peak_gflops": peak / 1e9, "matmul_peak_runs_gflops": [p / 1e9 for p in peaks],
           "model_shaped_gflops": median(r["model_shaped_flops"] for r in rows if r["label"] == "matmul-peak") / 1e9,
           "linear_macs_per_token": shape["linear_macs_per_token"], "variants": {}}
    runs = [r for r in overhead_rows if r["label"] == "alignlab" and r.get("state") == "finished"]
    runs += [r for r in rows if r["case"] == "dpo_bare" and r.get("state") == "finished"]
    for run in runs:
        label = run["label"] if run["case"] == "dpo_bare" else "alignlab (default)"
        reference = label != "precompute-ref"
        rate = achieved(shape, run, reference=reference)
        if rate is None:
            continue
        threads = run.get("threads")
        peak_here = max([r["peak_flops"] for r in rows if r["label"] == f"matmul-peak-threads-{threads}"] or [peak])
        entry = out["variants"].setdefault(label, {"gflops": [], "fraction_of_peak": [], "step_s": [],
                                                   "threads": threads})
        entry["gflops"].append(rate / 1e9)
        entry["fraction_of_peak"].append(rate / peak_here)
        entry["step_s"].append(median(steady(run["step_times"])))
    for run in rows:
        if run["case"] == "dpo_bare" and run.get("state") != "finished":
            out["variants"][run["label"]] = {"failed": run.get("error"), "threads": run.get("threads")}
    padding = next((r for r in rows if r["label"] == "padding"), None)
    if padding:
        out["padding"] = {k: padding[k]
                          for k in ("random_batches", "length_sorted_batches", "mean_tokens_per_sequence")}
    for entry in out["variants"].values():
        if "failed" in entry:
            continue
        for key in ("gflops", "fraction_of_peak", "step_s"):
            entry[key] = median(entry[key])
    return out


def chat(rows: list[dict]) -> dict:
    speed = next((r for r in rows if r["label"] == "speed" and "rounds" in r), None)
    memory = {kind: median(r["peak_rss_mib"] for r in rows if r["label"] == f"memory-{kind}")
              for kind in ("one", "pair", "two_copies") if any(r["label"] == f"memory-{kind}" for r in rows)}
    out = {"memory_mib": memory}
    if speed:
        rounds = speed["rounds"]
        out.update(pair_tokens_per_s=median(r["pair_tokens_per_s"] for r in rounds),
                   plain_tokens_per_s=median(r["plain_tokens_per_s"] for r in rounds),
                   per_side_tokens_per_s=median(r["per_side_tokens_per_s"] for r in rounds),
                   per_side_over_plain=median(r["per_side_tokens_per_s"] / r["plain_tokens_per_s"] for r in rounds),
                   pair_over_plain=median(r["pair_tokens_per_s"] / r["plain_tokens_per_s"] for r in rounds),
                   shares_weights=speed.get("shares_weights"))
    if "one" in memory:
        out["pair_over_one"] = _ratio(memory.get("pair"), memory["one"])
        out["two_copies_over_one"] = _ratio(memory.get("two_copies"), memory["one"])
    return out


def perl(rows: list[dict]) -> dict:
    labels = sorted({r["label"] for r in rows})
    table = {label: {"step_s": pooled_median(rows, label),
                     "peak_rss_mib": max((r["peak_rss_mib"] for r in rows if r["label"] == label), default=None),
                     "states": [r.get("state") for r in rows if r["label"] == label]} for label in labels}
    out = {"runs": table}
    for method in ("reward", "dpo"):
        lora, full = table.get(f"{method}-lora"), table.get(f"{method}-full")
        if lora and full:
            out[f"{method}_full_over_lora_time"] = _ratio(full["step_s"], lora["step_s"])
            out[f"{method}_full_over_lora_memory"] = _ratio(full["peak_rss_mib"], lora["peak_rss_mib"])
    if "rloo" in table and "ppo" in table:
        rloo, ppo = table["rloo"], table["ppo"]
        out["ppo_over_rloo_time"] = _ratio(ppo["step_s"], rloo["step_s"])
        out["rloo_over_ppo_memory"] = _ratio(rloo["peak_rss_mib"], ppo["peak_rss_mib"])
        out["seconds_per_sample"] = {"rloo": (rloo["step_s"] or 0) / BATCH, "ppo": (ppo["step_s"] or 0) / BATCH}
    return out


def probe(rows: list[dict]) -> dict:
    run = next((r for r in rows if r.get("state") == "finished"), None)
    if not run:
        return {}
    probing = sum(run["probe_seconds"])
    # from the start of the step-0 probe (it logs when done) to the last event (the final probe)
    loop = run["last_event_s"] - run["first_event_s"] + (run["probe_seconds"][0] if run["first_event_is_probe"] else 0)
    return {"steps": len(run["step_times"]) + 1, "probes": len(run["probe_seconds"]),
            "probe_s_each": median(run["probe_seconds"]) if run["probe_seconds"] else None,
            "probe_fraction_of_run": probing / loop if loop else None, "train_and_probe_s": loop,
            "start_to_first_point_s": run["first_event_s"], "start_to_first_step_s": run["first_train_step_s"],
            "subscriber_latency_ms": _latency([run]), "wall_s": run["wall_s"]}


def methods(rows: list[dict]) -> dict:
    return {r["label"]: {"step_s": pooled_median(rows, r["label"]), "peak_rss_mib": r["peak_rss_mib"],
                         "state": r.get("state"), "error": r.get("error")} for r in rows}


def sampling(rows: list[dict]) -> dict:
    """Per batch size: median tokens/s of each path, the bound, and the ratios; end-to-end rates with warm-up."""
    run = next((r for r in rows if "rows" in r), None)
    if not run:
        return {}
    table = {}
    plain = [r for r in run["rows"] if not r["path"].endswith("-groups")]
    for size in sorted({r["batch"] for r in plain}):
        here = [r for r in plain if r["batch"] == size]
        rate = {path: median(r["tokens"] / r["seconds"] for r in here if r["path"] == path)
                for path in ("generate", "exact", "engine") if any(r["path"] == path for r in here)}
        fp32 = next(r["tokens_per_s"] for r in here if r["path"] == "bound")
        bf16 = next((r["tokens_per_s"] for r in here if r["path"] == "bound-bf16"), None)
        bound = bf16 if bf16 and run.get("route") == "packed bf16" else fp32  # the engine's own precision
        products = next((r["tokens_per_s"] for r in here if r["path"] == "products"), None)
        table[str(size)] = {**rate, "bound": bound, "bound_fp32": fp32, "bound_bf16": bf16, "products": products,
                            "engine_over_products": rate["engine"] / products if products else None,
                            "engine_over_bound": rate["engine"] / bound,
                            "engine_over_fp32_bound": rate["engine"] / fp32,
                            "engine_over_generate": rate["engine"] / rate["generate"],
                            "generate_over_bound": rate["generate"] / fp32}
        if "exact" in rate:
            table[str(size)]["engine_over_exact"] = rate["engine"] / rate["exact"]
    groups, rollouts = [r for r in run["rows"] if r["path"].endswith("-groups")], None
    if groups:
        rate = {path: median(r["tokens"] / r["seconds"] for r in groups if r["path"] == f"{path}-groups")
                for path in ("generate", "engine")}
        rollouts = {**rate, "rows": groups[0]["batch"], "group": groups[0]["group"],
                    "engine_over_generate": rate["engine"] / rate["generate"]}
    end_to_end = {}
    for path in [p for p in ("generate", "exact", "engine") if p in run["warmup_s"]]:
        timed = [r for r in plain if r["path"] == path]
        end_to_end[path] = sum(r["tokens"] for r in timed) / (sum(r["seconds"] for r in timed) + run["warmup_s"][path])
    return {"threads": run["threads"], "tokens": run["tokens"], "reps": run["reps"], "batches": table,
            "rollouts": rollouts,
            "warmup_s": run["warmup_s"], "end_to_end_tokens_per_s": end_to_end,
            "peak_gflops": run["peak_flops"] / 1e9, "bandwidth_gb_s": run["bandwidth_bytes_per_s"] / 1e9,
            "peak_gflops_bf16": (run.get("peak_flops_bf16") or 0) / 1e9, "route": run.get("route", "model forward"),
            "kl_fp32_to_engine_per_token": run.get("kl_fp32_to_engine_per_token")}


def summarise(raw: dict[str, list]) -> dict:
    """Every section's figures; sections that did not run are absent."""
    out = {}
    if "overhead" in raw:
        out["overhead"] = overhead(raw["overhead"])
    if "efficiency" in raw:
        out["efficiency"] = efficiency(raw["efficiency"], raw.get("overhead", []))
    if "chat" in raw:
        out["chat"] = chat(raw["chat"])
    if "perl" in raw:
        out["perl"] = perl(raw["perl"])
    if "probe" in raw:
        out["probe"] = probe(raw["probe"])
    if "methods" in raw:
        out["methods"] = methods(raw["methods"])
    if "sampling" in raw:
        out["sampling"] = sampling(raw["sampling"])
    return out
