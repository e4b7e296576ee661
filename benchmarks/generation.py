"""Generation engines head to head on TAO's own workload: plain HF ``generate``, opentao's ``HFGenerator`` and the
vLLM backend, each in its own child process (one process tree), on the same requests.

Workload: the SQL task's training prompts (a ~430-token schema each) with the task's shipped sampling settings
(strategies, system prompt, temperature, stops), ``--k`` candidates per prompt and ``--max-new-tokens``, enough
prompts for ``--candidates`` candidates. Each engine is timed in two parts: start-up (load the model / start the
engine) and generation; tokens/s and candidates/s are reported with and without start-up. Peak RSS is the
largest summed resident memory of the child's whole process tree (vLLM's engine and worker processes included),
sampled every 0.2 s.

**Compute bound.** A generated token costs about ``2 · P`` FLOPs (P = parameter count, the tied embedding counted
once, as the LM head); a prompt token ``2 · (P − E)`` (E = the embedding's parameters: logits are computed for the
last prompt position only), counted once per distinct prompt text (ideal prefix sharing). Attention over these
short contexts adds a few percent and is left out. The bound is that FLOP count divided by the
best matmul rate this CPU reaches at the model's own shapes (``torch.matmul`` at the MLP's shapes, 512–2048 rows, in
the engine's dtype, best of several runs on all cores, measured after the engines ran). An engine's *share of the bound* is bound time / its
generation time.

Also recorded: how often greedy decoding gives the same text under vLLM as under ``HFGenerator`` (the first
``--greedy-prompts`` prompts, plain strategy).

    python benchmarks/generation.py                      # all three engines → results/generation-<machine>.json
    python benchmarks/generation.py --engines vllm --candidates 64   # a quick look at one engine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGINES = ("hf-plain", "hf", "vllm", "vllm-compiled", "vllm-reserve1", "vllm-eager-reserve1")
# "vllm" is opentao's defaults (on a CPU: eager, and on <= 4 cores every core for vLLM's workers); the variants
# measure what those defaults change: compiled (torch.compile), and vLLM's own choice of keeping a core for its
# front end, compiled or eager
VARIANT_ENV = {"vllm-reserve1": {"VLLM_CPU_NUM_OF_RESERVED_CPU": "1"},
               "vllm-eager-reserve1": {"VLLM_CPU_NUM_OF_RESERVED_CPU": "1"}}
VARIANT_VLLM = {"vllm-compiled": {"enforce_eager": False}, "vllm-reserve1": {"enforce_eager": False},
                "vllm-eager-reserve1": {"enforce_eager": True}}


def tree_rss_peak(stop: threading.Event, out: list[int]) -> None:
    import psutil

    me = psutil.Process()
    while not stop.is_set():
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        out[0] = max(out[0], total)
        stop.wait(0.2)


def workload(n_candidates: int, k: int, max_new_tokens: int):
    """(generate config, prompts, slots) of the SQL task's first prompts, enough for ``n_candidates``."""
    from opentao.data import load_prompts
    from opentao.generate.strategies import plan_slots
    from opentao.tasks import get_task

    cfg = get_task("sql").config()
    gen = cfg.generate.model_copy(update={"k": k, "max_new_tokens": max_new_tokens})
    n_prompts = -(-n_candidates // k)
    prompts = load_prompts(cfg.prompts)[:n_prompts]
    if len(prompts) < n_prompts:
        raise SystemExit(f"error: the sql task has only {len(prompts)} training prompts")
    return cfg, gen, prompts, plan_slots(gen.k, gen.strategies, gen.temperatures, len(gen.system_prompts))


class PlainHF:
    """Plain ``transformers`` sampling: ``generate(num_return_sequences=n)`` per distinct prompt text (no shared
    prefill, HF's own ``stop_strings``), batches of ``batch_size`` sequences — what a user writes first."""

    def __init__(self, model: str, dtype: str, batch_size: int, top_p: float):
        from opentao.generate.hf import stop_token_ids
        from opentao.models import load_model

        self.model, self.tok = load_model(model, dtype=dtype)
        self.tok.padding_side = "left"
        self.batch_size, self.top_p = batch_size, top_p
        self.stop_ids = stop_token_ids(self.tok)

    def generate(self, requests):
        import torch

        from opentao.generate.backend import GenOutput

        groups: list[tuple[int, int]] = []  # (first request, count) of runs of identical messages
        for i, r in enumerate(requests):
            if groups and requests[groups[-1][0]].messages == r.messages:
                groups[-1] = (groups[-1][0], groups[-1][1] + 1)
            else:
                groups.append((i, 1))
        outputs = []
        n = groups[0][1]
        per_call = max(1, self.batch_size // n)
        for start in range(0, len(groups), per_call):
            chunk = groups[start : start + per_call]
            texts = [self.tok.apply_chat_template(requests[i].messages, tokenize=False, add_generation_prompt=True)
                     for i, _ in chunk]
            enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            req = requests[chunk[0][0]]
            torch.manual_seed(req.seed)
            with torch.inference_mode():
                out = self.model.generate(**enc, do_sample=req.temperature > 0, temperature=req.temperature or None,
                                          top_p=self.top_p, num_return_sequences=n, max_new_tokens=req.max_new_tokens,
                                          eos_token_id=self.stop_ids, pad_token_id=self.tok.pad_token_id,
                                          stop_strings=list(req.stop) or None, tokenizer=self.tok)
            for row in out[:, enc["input_ids"].shape[1] :].tolist():
                ids = row[: next((j for j, t in enumerate(row) if t in self.stop_ids), len(row))]
                outputs.append(GenOutput(self.tok.decode(ids, skip_special_tokens=True), len(ids)))
        return outputs


def matmul_peak_flops(dtype) -> float:
    """The best FLOP/s of ``torch.matmul`` at the model's MLP shapes (hidden 576, intermediate 1536)."""
    import torch

    best = 0.0
    for m, k, n in ((512, 576, 1536), (2048, 576, 1536), (2048, 1536, 576)):
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        for _ in range(3):
            a @ b
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(10):
                a @ b
            best = max(best, 2 * m * k * n * 10 / (time.perf_counter() - t))
    return best


def run_one(engine: str, args) -> dict:
    """Runs in the child process: start the engine, generate the workload part by part, report."""
    from opentao.generate.backend import GenRequest
    from opentao.generate.engines import build_generator, close_generator
    from opentao.generate.stage import generate_part, part_seed

    cfg, gen, prompts, slots = workload(args.candidates, args.k, args.max_new_tokens)
    peak, stop = [0], threading.Event()
    threading.Thread(target=tree_rss_peak, args=(stop, peak), daemon=True).start()
    t0 = time.perf_counter()
    if engine == "hf-plain":
        generator = PlainHF(cfg.model, cfg.dtype, gen.batch_size, gen.top_p)
    else:
        gen_v = gen.model_copy(update={"vllm": gen.vllm.model_copy(update=VARIANT_VLLM.get(engine, {}))})
        generator = build_generator(gen_v, cfg.model, dtype=cfg.dtype, seed=0, backend=engine.split("-")[0])
    startup = time.perf_counter() - t0
    t1 = time.perf_counter()
    cands = []
    for idx in range(0, len(prompts), gen.prompts_per_part):
        part = prompts[idx : idx + gen.prompts_per_part]
        cands += generate_part(generator, part, slots, gen, round_=1, seed=part_seed(0, 1, idx))
    gen_s = time.perf_counter() - t1
    greedy = []
    if engine in ("hf", "vllm") and args.greedy_prompts:
        reqs = [GenRequest(p.messages, 0.0, gen.max_new_tokens, stop=tuple(gen.stop)) for p in prompts[: args.greedy_prompts]]
        greedy = [o.text for o in generator.generate(reqs)]
    close_generator(generator)
    stop.set()
    tokens = sum(c.num_tokens for c in cands)
    return {"engine": engine, "startup_s": round(startup, 2), "generate_s": round(gen_s, 2),
            "candidates": len(cands), "prompts": len(prompts), "new_tokens": tokens,
            "tok_per_s": round(tokens / gen_s, 1), "tok_per_s_with_startup": round(tokens / (gen_s + startup), 1),
            "cand_per_s": round(len(cands) / gen_s, 3),
            "cand_per_s_with_startup": round(len(cands) / (gen_s + startup), 3),
            "peak_rss_gib": round(peak[0] / 2**30, 2), "greedy_texts": greedy,
            "mean_new_tokens": round(tokens / len(cands), 1)}


def machine(dtype_name: str) -> dict:
    import torch

    from opentao.models import cpu_has_fast_bf16

    info = {"python": platform.python_version(), "torch": torch.__version__, "cores": os.cpu_count(),
            "cpu": next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                        platform.processor()),
            "avx512_bf16": cpu_has_fast_bf16(), "dtype": dtype_name, "gpu": torch.cuda.is_available()}
    try:
        import vllm

        info["vllm"] = vllm.__version__
    except ImportError:
        info["vllm"] = None
    return info


def bound(results: list[dict], args) -> dict:
    """The workload's FLOPs at 2·P per token through the model, over the measured matmul peak."""
    import torch

    from opentao.generate.hf import HFGenerator
    from opentao.models import load_model, pick_dtype, pick_device

    cfg, gen, prompts, slots = workload(args.candidates, args.k, args.max_new_tokens)
    model, tok = load_model(cfg.model, dtype=cfg.dtype)
    params = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    from opentao.generate.strategies import source_messages

    render = HFGenerator(model, tok).render
    distinct = {render(source_messages(p.messages, s, gen.system_prompts)) for p in prompts for s in slots}
    prefill = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in distinct)
    dtype = pick_dtype(cfg.dtype, pick_device("cpu"))
    peak = matmul_peak_flops(dtype)
    out = {"params": params, "embedding_params": embed, "distinct_prompt_tokens": prefill, "matmul_peak_gflops": round(peak / 1e9, 1),
           "dtype": str(dtype).replace("torch.", "")}
    for r in results:
        flops = 2 * (params - embed) * prefill + 2 * params * r["new_tokens"]
        r["bound_s"] = round(flops / peak, 2)
        r["share_of_bound"] = round(flops / peak / r["generate_s"], 3)
        r["bound_tok_per_s"] = round(r["new_tokens"] / (flops / peak), 1)
    return out


def render(report: dict) -> str:
    """The JSON as a Markdown page (``results/generation-<machine>.md``)."""
    m, w, b = report["machine"], report["workload"], report["bound"]
    lines = [f"# Generation engines ({'GPU' if m['gpu'] else 'CPU'})", "",
             f"Written by `benchmarks/generation.py` from `{report['json']}` ({report['when']}): {m['cores']} × {m['cpu']}, "
             f"AVX-512 BF16 {m['avx512_bf16']}, {m['dtype']}, torch {m['torch']}, vLLM {m['vllm']}. Workload: the "
             f"`{w['task']}` task's training prompts, K={w['k']}, ≤{w['max_new_tokens']} new tokens, "
             f"{w['candidates']} candidates, the task's sampling settings.", "",
             "| engine | start-up s | generate s | tok/s | tok/s incl. start-up | cand/s incl. start-up | "
             "share of bound | peak RSS GiB | load before |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["engines"]:
        lines.append(f"| {r['engine']} | {r['startup_s']} | {r['generate_s']} | {r['tok_per_s']} | "
                     f"{r['tok_per_s_with_startup']} | {r['cand_per_s_with_startup']} | {r.get('share_of_bound')} | "
                     f"{r['peak_rss_gib']} | {r.get('load_avg_1m_before', '')} |")
    lines += ["", f"Bound: {b['params']:,} parameters ({b['embedding_params']:,} in the tied embedding), "
              f"{b['distinct_prompt_tokens']:,} distinct prompt tokens, matmul peak {b['matmul_peak_gflops']} GFLOP/s "
              f"({b['dtype']}). Ratios (generation time, and with start-up):", ""]
    lines += [f"- `{k}`: {v}" for k, v in report["ratios"].items()]
    return "\n".join(lines) + "\n"


def torch_has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engines", default="hf-plain,hf,vllm", help=f"comma-separated, of {', '.join(ENGINES)}")
    ap.add_argument("--candidates", type=int, default=512)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--greedy-prompts", type=int, default=32)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--resume", action="store_true", help="reuse engines already measured (OUT.parts/ENGINE.json)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        raise SystemExit(f"error: unknown engine(s) {bad}: use {', '.join(ENGINES)}")
    out = args.out or HERE / "results" / f"generation-{'gpu' if torch_has_cuda() else 'cpu'}.json"
    parts = out.with_suffix(".parts")  # each engine's result as it finishes; --resume reuses them
    parts.mkdir(parents=True, exist_ok=True)
    results = []
    for engine in engines:
        done = parts / f"{engine}.json"
        if args.resume and done.is_file():
            results.append(json.loads(done.read_text()))
            print(f"[{engine}] reused {done}", file=sys.stderr, flush=True)
            continue
        cmd = [sys.executable, __file__, "--one", engine, "--candidates", str(args.candidates), "--k", str(args.k),
               "--max-new-tokens", str(args.max_new_tokens), "--greedy-prompts", str(args.greedy_prompts)]
        print(f"[{engine}] running ...", file=sys.stderr, flush=True)
        load_before = os.getloadavg()[0]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **VARIANT_ENV.get(engine, {})})
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"error: engine {engine} failed (exit {proc.returncode})")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["process_s"] = round(time.perf_counter() - t, 1)
        r["load_avg_1m_before"], r["load_avg_1m_after"] = load_before, os.getloadavg()[0]
        done.write_text(json.dumps(r, indent=1) + "\n")
        results.append(r)
        print(f"[{engine}] {r['tok_per_s']} tok/s, start-up {r['startup_s']} s", file=sys.stderr, flush=True)
    facts = bound(results, args)
    by = {r["engine"]: r for r in results}
    ratios = {}
    for name, v in by.items():
        if not name.startswith("vllm"):
            continue
        for other in ("hf-plain", "hf"):
            if other in by:
                o = by[other]
                ratios[f"{name}_vs_{other}"] = round(o["generate_s"] / v["generate_s"], 2)
                ratios[f"{name}_vs_{other}_with_startup"] = round((o["generate_s"] + o["startup_s"])
                                                                  / (v["generate_s"] + v["startup_s"]), 2)
    if "vllm" in by and "hf" in by and by["vllm"]["greedy_texts"] and by["hf"]["greedy_texts"]:
        same = sum(a == b for a, b in zip(by["vllm"]["greedy_texts"], by["hf"]["greedy_texts"]))
        ratios["greedy_same_text_vllm_vs_hf"] = f"{same}/{len(by['vllm']['greedy_texts'])}"
    for r in results:
        r.pop("greedy_texts", None)
    report = {"benchmark": "generation", "workload": {"task": "sql", "k": args.k, "max_new_tokens": args.max_new_tokens,
                                                        "candidates": args.candidates},
              "machine": machine(facts["dtype"]), "bound": facts, "engines": results, "ratios": ratios,
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.parent.mkdir(parents=True, exist_ok=True)
    report["json"] = str(out.relative_to(HERE.parent)) if out.is_relative_to(HERE.parent) else str(out)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(report))
    print(json.dumps({"engines": [{k: r[k] for k in ("engine", "startup_s", "generate_s", "tok_per_s",
                                                     "tok_per_s_with_startup", "share_of_bound", "peak_rss_gib")}
                                  for r in results], "ratios": ratios}, indent=1))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
