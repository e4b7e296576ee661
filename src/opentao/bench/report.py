"""The benchmark report: tables, targets and plots computed **only** from the saved per-arm JSON files.

Result names (see ``benchmarks/tao_table.py``): ``<task>-base``, ``<task>-sft``, ``<task>-tao``,
``<task>-oracle``, ``multitask``, and the compute-scaling settings ``<task>-tao-k<K>`` (other K, round 1) and
``<task>-tao-r<R>`` (default K, rounds 2..). Every file has ``evals: {task: eval summary}`` with per-example
correctness, so differences to the base come with a paired-bootstrap 95% CI.

Seeds (:mod:`opentao.bench.results`): ``results`` maps names to the seed-0 files; ``by_seed`` (``{name: {seed:
result}}``, :meth:`~opentao.bench.results.ResultDir.by_seed`) adds the other seeds' files. An arm with files at
several seeds shows, in the accuracy table and the targets, the mean over its seeds, and its difference to the
base carries the pooled (seed × example) CI of :func:`opentao.bench.stats.pooled_paired_bootstrap`, the one base
run paired with every seed, and so does a compute-scaling setting (its targets' curves: :mod:`opentao.bench.targets`).
Arms with one seed — and the cost and plot views — are seed 0's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentao.bench.stats import aligned, paired_bootstrap
from opentao.bench.targets import metric_name, targets
from opentao.bench.views import (ARM_TITLES, ARMS, TASK_TITLES, TASKS, arm_data, arm_eval, its_arm,  # noqa: F401
                                 measured, pooled_vs_base, scaling_points, seed_runs, untrained, vs_base)
from opentao.bench.views import mean as _mean
from opentao.bench.views import pct as _pct
from opentao.bench.views import points as _points

def _mark(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "n/a (not measured or undefined)"}[met]


def report_links(reports_dir: Path, mode: str, base: Path | None = None) -> list[str]:
    """Markdown links to the ``tao report`` pages of this mode's arms (``reports/<mode>-<task>.html``, written by
    ``tao_table.py --reports`` from the arms' run directories), for the tasks that have one; none otherwise."""
    here = base or Path(__file__).resolve().parents[3] / "benchmarks"
    found = [(t, reports_dir / f"{mode}-{t}.html") for t in TASKS if (here / reports_dir / f"{mode}-{t}.html").is_file()]
    if not found:
        return []
    return ["", "Reports (`tao report` of each task's sample pools and evals): " + ", ".join(
        f"[{TASK_TITLES[t]}]({p.as_posix()})" for t, p in found)]


def _untrained_mark(runs: list[dict]) -> str:
    """† when the arm trained nothing; at several seeds ``†k/n`` when k of its n seeds did."""
    k = sum(untrained(d) for d in runs)
    return "" if k == 0 else " †" if k == len(runs) == 1 else f" †{k}/{len(runs)}"


def accuracy_cell(results: dict[str, dict], by_seed: dict[str, dict[int, dict]] | None, task: str,
                  arm: str) -> str:
    """One cell of the accuracy table: the (mean) accuracy, ``(N seeds)`` when N > 1, and the difference to the
    base with its (pooled) paired-bootstrap 95% CI."""
    runs = seed_runs(results, by_seed, task, arm)
    if not runs:
        return "—"
    evs = [d["evals"][task] for d in runs]
    cell = _pct(_mean([ev["accuracy"] for ev in evs])) + _untrained_mark(runs)
    if len(runs) > 1:
        cell += f" ({len(runs)} seeds)"
    d = pooled_vs_base(results, task, evs) if arm != "base" else None
    return cell + (f" ({_points(d)})" if d is not None else "")


def render_seeds(results: dict[str, dict], by_seed: dict[str, dict[int, dict]]) -> list[str]:
    """Per-seed view of every arm with several seeds: each seed's accuracy and difference to base, and the pooled
    mean difference with its CI (seed and test-set variance); no lines when no arm has a second seed."""
    rows = []
    for task in TASKS:
        for arm in ARMS:
            runs = seed_runs(results, by_seed, task, arm)
            d = pooled_vs_base(results, task, [r["evals"][task] for r in runs]) if len(runs) > 1 else None
            if d is None:
                continue
            seeds = ", ".join(str(r.get("seed", "?")) for r in runs)
            accs = " / ".join(_pct(r["evals"][task]["accuracy"]) for r in runs)
            per = " / ".join(f"{100 * x:+.1f}" for x in d["per_seed"])
            rows.append(f"| {task} | {ARM_TITLES[arm]} | {seeds} | {accs} | {per} | {_points(d)} | {d['n']} |")
    if not rows:
        return []
    return ["", "### Seeds: accuracy (%) and difference to base (points) per seed", "",
            "The pooled CI resamples the seeds and, shared by the drawn seeds, the held-out examples: it covers "
            "run-to-run and test-set variance (`opentao.bench.stats.pooled_paired_bootstrap`). The base is one "
            "greedy run, paired with every seed.", "",
            "| task | arm | seeds | accuracy per seed | Δ vs base per seed | mean Δ (pooled 95% CI) | n |",
            "|---|---|---|---|---|---|---|", *rows]


def render_mode(results: dict[str, dict], mode: str, plot_prefix: str,
                by_seed: dict[str, dict[int, dict]] | None = None, diag: dict[str, dict] | None = None) -> str:
    """The mode's section of the README from its result files (``by_seed``: every seed's, else seed 0's only;
    ``diag``: the mode's answer-level diagnostics keyed by arm name, which docqa's targets read)."""
    lines = [f"## {mode} run", ""]
    files = [d for runs in (by_seed or {n: {0: d} for n, d in results.items()}).values() for d in runs.values()]
    wall = sum(d.get("wall_seconds", 0) for d in files)
    seeds = sorted({int(d.get("seed", 0)) for d in files})
    lines.append(f"{len(files)} finished arm files, {wall / 60:.1f} min of arm wall time in total "
                 f"(seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds)) or '—'}).")
    multi = any(len(seed_runs(results, by_seed, t, a)) > 1 for t in TASKS for a in ARMS)
    title = "paired-bootstrap 95% CI" + ("; over seeds and examples where an arm has several seeds" if multi else "")
    lines += ["", f"### Held-out accuracy (%) and difference to base (points, {title})", ""]
    lines.append("| task | n | " + " | ".join(ARM_TITLES[a] for a in ARMS) + " |")
    lines.append("|---|---|" + "---|" * len(ARMS))
    for task in measured(results):
        base = arm_eval(results, task, "base")
        cells = [accuracy_cell(results, by_seed, task, arm) for arm in ARMS]
        lines.append(f"| {task} | {base['n'] if base else '—'} | " + " | ".join(cells) + " |")
    lines += ["", "† no candidate reached the arm's reward threshold, so it trained nothing and *is* the base model"
              + (" (†k/n: at k of its n seeds)." if multi else "."),
              "", "Training data per arm (examples kept; share of them that are gold-correct, a diagnostic never "
              "used for selection):", ""]
    for task in measured(results):
        parts = []
        for arm in ("sft", "tao", "oracle"):
            sel = (arm_data(results, task, arm) or {}).get("selection") or {}
            if "examples" in sel:
                share = sel.get("gold_correct_share_of_chosen")
                parts.append(f"{ARM_TITLES[arm]} {sel['examples']}" + (f" ({100 * share:.0f}% gold-correct)"
                                                                        if share is not None else ""))
        if parts:
            lines.append(f"* {task}: " + "; ".join(parts))
    lines += ["", "### Inference cost: base vs tuned (same architecture, so the same cost per token)", "",
              "Latency is wall clock per request in batches of 32 on a CPU shared with other jobs, so it is noisy; "
              "parameters and new tokens per answer are the stable cost measures.", ""]
    lines.append("| task | arm | mean new tokens | mean response chars | s / request (batched) | parameters |")
    lines.append("|---|---|---|---|---|---|")
    for task in measured(results):
        for arm in ARMS:
            ev = arm_eval(results, task, arm)
            if ev is not None:
                lines.append(f"| {task} | {ARM_TITLES[arm]} | {ev['mean_new_tokens']:.1f} | "
                             f"{ev.get('mean_response_chars', float('nan')):.0f} | {ev['seconds_per_request']:.2f} | "
                             f"{ev['parameters']:,} |")
    lines += render_seeds(results, by_seed or {})
    scal = {t: scaling_points(results, t) for t in measured(results)}
    if any(len(v) > 1 for v in scal.values()):
        lines += ["", "### Compute scaling: held-out accuracy (%) per TAO setting", "",
                  "*Mean reward* is the round's label-free reward over its candidates; *kept* the training examples "
                  "it selected and, read from the gold afterwards, the share of them that are correct (the "
                  "selection's precision), both seed 0's. A setting run at several seeds shows the mean accuracy "
                  "over them and the pooled CI, as in the first table.", ""]
        lines.append("| task | K | rounds | accuracy | Δ vs base (95% CI) | mean reward | kept (gold-correct) |")
        lines.append("|---|---|---|---|---|---|---|")
        for task, pts in scal.items():
            for p in pts:
                evs = [d["evals"][task] for d in seed_runs(results, by_seed, task, p["name"].removeprefix(f"{task}-"))]
                d = pooled_vs_base(results, task, evs)
                ci = f"{100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]" if d else "—"
                sel = results[p["name"]].get("selection") or {}
                reward = f"{sel['mean_reward']:.2f}" if sel.get("mean_reward") is not None else "—"
                acc = _pct(_mean([ev["accuracy"] for ev in evs])) + (f" ({len(evs)} seeds)" if len(evs) > 1 else "")
                lines.append(f"| {task} | {p['k']} | {p['rounds']} | {acc} | {ci} | {reward} | {_kept(sel)} |")
    lines += ["", "### Targets (computed from the JSON files above)", ""]
    if any(metric_name(t, diag) != "accuracy" for t in measured(results)):
        lines += ["docqa's targets use its balanced yes/no accuracy (mean recall of the two classes: 50 for any "
                  "constant answer), whose plain accuracy pays for answering *yes* to everything.", ""]
    lines.append("| target | task | status | numbers |")
    lines.append("|---|---|---|---|")
    for t in targets(results, by_seed, diag):
        lines.append(f"| {t['target']} | {t['task']} | {_mark(t['met'])} | {t['detail']} |")
    lines += report_links(Path(plot_prefix).parent.parent / "reports", mode)
    lines += ["", f"![arms per task]({plot_prefix}-arms.png)", "",
              f"![compute scaling]({plot_prefix}-scaling.png)", ""]
    return "\n".join(lines)


def plot_arms(results: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = measured(results)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.8 / len(ARMS)
    for j, arm in enumerate(ARMS):
        xs, ys, errs = [], [], [[], []]
        for i, task in enumerate(tasks):
            ev = arm_eval(results, task, arm)
            if ev is None:
                continue
            xs.append(i + (j - (len(ARMS) - 1) / 2) * width)
            ys.append(100 * ev["accuracy"])
            lo, hi = ev["ci95"]
            errs[0].append(100 * (ev["accuracy"] - lo))
            errs[1].append(100 * (hi - ev["accuracy"]))
        if xs:
            ax.bar(xs, ys, width, yerr=errs, capsize=2, label=ARM_TITLES[arm])
    ax.set_xticks(range(len(tasks)), [TASK_TITLES[t] for t in tasks], fontsize=8)
    ax.set_ylabel("held-out accuracy (%), Wilson 95% CI")
    ax.set_title(title)
    ax.legend(fontsize=7, ncols=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(results: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_k, ax_r) = plt.subplots(1, 2, figsize=(9, 3.6))
    for task in measured(results):
        pts = scaling_points(results, task)
        base = arm_eval(results, task, "base")
        ks = sorted((p for p in pts if p["rounds"] == 1 and p["k"]), key=lambda p: p["k"])
        if len(ks) >= 2:
            line = ax_k.plot([p["k"] for p in ks], [100 * p["accuracy"] for p in ks], marker="o", label=task)[0]
            if base:
                ax_k.axhline(100 * base["accuracy"], ls=":", color=line.get_color(), lw=1)
        tao = results.get(f"{task}-tao")
        if tao:
            k0 = tao["params"].get("k")
            rs = sorted((p for p in pts if p["k"] == k0), key=lambda p: p["rounds"])
            if len(rs) >= 2:
                ax_r.plot([p["rounds"] for p in rs], [100 * p["accuracy"] for p in rs], marker="o", label=task)
    ax_k.set_xscale("log", base=2)
    ax_k.set_xlabel("K candidates per prompt (round 1); dotted: base")
    ax_k.set_ylabel("held-out accuracy (%)")
    ax_r.set_xlabel("TAO rounds (default K)")
    for ax in (ax_k, ax_r):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no runs of this kind in this mode", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _kept(sel: dict) -> str:
    """An arm's kept training examples and, read from the gold afterwards, the share of them that are correct."""
    share = sel.get("gold_correct_share_of_chosen")
    return f"{sel.get('examples', '—')}" + (f" ({100 * share:.0f}%)" if share is not None else "")


def _delta(a: dict | None, b: dict | None) -> str:
    """``b`` minus ``a`` in points with its paired-bootstrap 95% CI, or — when either is missing."""
    if a is None or b is None:
        return "—"
    x, y = aligned(a["per_example"], b["per_example"])
    return _points(paired_bootstrap(x, y))


def same_pool(tried: dict, ref: dict | None) -> bool | None:
    """Whether a tried arm trained from the same sample pool as the plan arm it varies: the pool's fingerprint
    (candidate count and gold-correct share of the candidates, a diagnostic the selection records) must match.
    None when it cannot be told: a labeled-SFT variant (no pool), a changed ``k`` (unless ``vs`` names the plan
    arm of that K) or ``n_train`` (another pool by design), a later round (sampled by the variant's own previous
    round's model, so another pool by design too), or a side that recorded no selection."""
    p = tried.get("params", {})
    if p.get("from") == "sft" or ("k" in p and "vs" not in p) or "n_train" in p or ref is None or \
            int(p.get("rounds", 1)) > 1:
        return None
    a, b = tried.get("selection") or {}, ref.get("selection") or {}
    keys = ("candidates", "gold_correct_share_of_candidates")
    if any(a.get(k) is None or b.get(k) is None for k in keys):
        return None
    return all(abs(float(a[k]) - float(b[k])) < 1e-9 for k in keys)


def chain_same_pool(data: dict, ref: dict | None, tried: dict[str, dict], plan: dict[str, dict]) -> bool | None:
    """:func:`same_pool`, and for a later round of a tried variant (``rounds: R``, ``after: <variant>``) that of
    the round-1 variant it grew from against its own arm (``tried`` and ``plan``: results by name at one seed):
    a chain started on a regenerated pool is marked at every round."""
    p = data.get("params", {})
    if int(p.get("rounds", 1)) > 1 and p.get("after"):
        task = data["tasks"][0]
        first = tried.get(f"{task}-{p['after']}")
        if first is None:
            return None
        arm = its_arm(first.get("params", {}))
        return same_pool(first, plan.get(f"{task}-{arm}") or tried.get(f"{task}-{arm}"))
    return same_pool(data, ref)


def render_tried(tried: dict[str, dict], results: dict[str, dict],
                 title: str = "What we tried for the missed targets", intro: str = "", *,
                 tried_seeds: dict[str, dict[int, dict]] | None = None,
                 plan_seeds: dict[str, dict[int, dict]] | None = None, diag: dict[str, dict] | None = None,
                 base_balanced: float | None = None) -> str:
    """The ``--tried`` arms: each against the base and against its arm (``params.vs``, else ``.from``): a plan arm
    of ``results`` (the same run's plan arms) or, when no plan arm has that name, another tried arm of the same task
    (a same-pool control); ``intro`` is a paragraph put before the table. The rows are seed 0's; the variants with
    files at more seeds (``tried_seeds``, against ``plan_seeds``) get :func:`render_tried_seeds` below."""
    lines = [f"### {title}", ""] + ([intro, ""] if intro else []) + [
             "Each row is one plan arm (round 1 unless the row names a later round; *its arm*, named in the row) "
             "with the named knob changed — same prompts and seed — so *Δ vs its arm* is that knob's effect on one "
             "seed.", "",
             "| task | tried | what changed | kept examples (gold-correct) | steps | accuracy | Δ vs base (95% CI) "
             "| its arm | Δ vs its arm (95% CI) |", "|---|---|---|---|---|---|---|---|---|"]
    differs = False
    for name, data in sorted(tried.items(), key=lambda kv: (TASKS.index(kv[1]["tasks"][0]), kv[0])):
        task, p = data["tasks"][0], data.get("params", {})
        ev = data["evals"][task]
        sel, tr = data.get("selection") or {}, data.get("train") or {}
        kept = _kept(sel)
        if sel.get("chosen_yes_share") is not None:
            kept += f"; {100 * sel['chosen_yes_share']:.0f}% of its {sel['chosen_yesno']} yes/no say *yes*"
        arm = its_arm(p)
        ref_data = arm_data(results, task, arm) or arm_data(tried, task, arm)
        ref = (ref_data or {}).get("evals", {}).get(task)
        mark = " ‡" if chain_same_pool(data, ref_data, tried, results) is False else ""
        differs = differs or bool(mark)
        lines.append(f"| {task} | `{name}` | {p.get('why', '')} | {kept} | {tr.get('steps', '—')} | "
                     f"{_pct(ev['accuracy'])} | {_delta(arm_eval(results, task, 'base'), ev)} | "
                     f"`{task}-{arm}` | {_delta(ref, ev)}{mark} |")
    if differs:
        lines += ["", "‡ this arm's sample pool was regenerated (in a later session) and is not its arm's: the "
                  "gold-correct share of its candidates differs, so *Δ vs its arm* mixes the knob's effect with "
                  "sampling noise."]
    lines += render_tried_seeds(tried_seeds or {}, plan_seeds or {}, diag or {}, base_balanced)
    return "\n".join(lines) + "\n"


def _pooled_vs(ref: list[dict], got: list[dict]) -> dict:
    """Seed-paired evals (``ref[i]`` and ``got[i]`` at one seed) → the pooled paired bootstrap of got − ref."""
    from opentao.bench.stats import pooled_paired_bootstrap

    pairs = [aligned(a["per_example"], b["per_example"]) for a, b in zip(ref, got)]
    return pooled_paired_bootstrap([x for x, _ in pairs], [y for _, y in pairs])


def _at(by_seed: dict[str, dict[int, dict]], seed: int) -> dict[str, dict]:
    """The results by name at one seed."""
    return {name: runs[seed] for name, runs in by_seed.items() if seed in runs}


def render_tried_seeds(tried_seeds: dict[str, dict[int, dict]], plan_seeds: dict[str, dict[int, dict]],
                       diag: dict[str, dict], base_balanced: float | None = None) -> list[str]:
    """The tried variants run at several seeds (``seeds`` in ``tried.yaml``): accuracy per seed, the mean's
    difference to the base and to its arm at the same seeds, each with the pooled (seed × example) CI; for docqa
    also the balanced yes/no accuracy (``diag``: ``results/diagnostics-full.json``'s tried entries by variant name;
    ``base_balanced``: the docqa base's balanced accuracy, which the mean is shown as)."""
    rows = []
    for name, runs in sorted(tried_seeds.items(), key=lambda kv: (TASKS.index(next(iter(kv[1].values()))["tasks"][0]),
                                                                  kv[0])):
        if len(runs) < 2:
            continue
        first = next(iter(runs.values()))
        task, p = first["tasks"][0], first.get("params", {})
        arm = its_arm(p)
        ref = plan_seeds.get(f"{task}-{arm}") or tried_seeds.get(f"{task}-{arm}") or {}
        seeds = sorted(runs)
        evs = [runs[x]["evals"][task] for x in seeds]
        base = (plan_seeds.get(f"{task}-base") or {}).get(0, {}).get("evals", {}).get(task)
        d_base = _points(_pooled_vs([base] * len(evs), evs)) if base else "—"
        both = [x for x in seeds if x in ref]
        d_arm = _points(_pooled_vs([ref[x]["evals"][task] for x in both], [runs[x]["evals"][task] for x in both])) \
            if both else "—"
        other = [str(x) for x in both
                 if chain_same_pool(runs[x], ref[x], _at(tried_seeds, x), _at(plan_seeds, x)) is False]
        d_arm += f" ‡ (seed {', '.join(other)})" if other else ""
        arm_accs = " / ".join(_pct(ref[x]["evals"][task]["accuracy"]) if x in ref else "—" for x in seeds)
        bal = "—"
        dd = (diag.get(name) or {}).get(task) or {}
        if task == "docqa" and (vb := dd.get("yesno_balanced_vs_base_pooled")):
            per = " / ".join(f"{100 * x:+.1f}" for x in vb["per_seed"])
            bal = f"Δ vs base per seed {per}; mean {_points(vb)}"
            if base_balanced is not None:
                bal = f"{100 * (base_balanced + vb['delta']):.1f} ({bal})"
            if va := dd.get("yesno_balanced_vs_arm_pooled"):
                bal += f"; vs its arm {_points(va)}"
        rows.append(f"| {task} | `{name}` | {', '.join(map(str, seeds))} | "
                    f"{' / '.join(_pct(ev['accuracy']) for ev in evs)} | {_pct(_mean([ev['accuracy'] for ev in evs]))} "
                    f"({d_base}) | `{task}-{arm}`: {arm_accs} | {d_arm} | {bal} |")
    if not rows:
        return []
    return ["", "#### Tried at several seeds", "",
            "Each seed's variant reads that seed's sample pool and is paired with its arm at the same seed; the "
            "means' CIs are pooled over seeds and examples, as in the first table (‡: at that seed the variant's "
            "pool is not its arm's, as above).", "",
            "| task | tried | seeds | accuracy per seed | mean (Δ vs base, pooled 95% CI) | its arm per seed "
            "| Δ vs its arm (pooled 95% CI) | docqa balanced yes/no (mean; pooled CIs) |",
            "|---|---|---|---|---|---|---|---|", *rows]


def _ordered(diag: dict[str, dict], task: str) -> list[tuple[str, dict]]:
    order = {a: i for i, a in enumerate(("base", "sft", "tao", "oracle"))}

    def key(name: str) -> tuple[int, str]:
        mode, _, arm = name.partition("-")
        rank = order.get(arm.removeprefix(f"{task}-"), 4 if arm == "multitask" else 5)
        return (mode == "tried", rank, name)

    return [(n, d[task]) for n, d in sorted(diag.items(), key=lambda kv: key(kv[0])) if task in d]


def _constant(yes_share: float | None) -> str:
    """Whether the yes/no answers are (almost) all one word (:func:`opentao.bench.diagnose.one_constant`)."""
    from opentao.bench.diagnose import one_constant

    if yes_share is None:
        return "—"
    word = one_constant(yes_share)
    return f"**always {word}**" if word else "no"


def render_diagnostics(diag: dict[str, dict], mode: str) -> str:
    """Answer-level diagnostics (``results/diagnostics-<mode>.json``, from :mod:`opentao.bench.diagnose`)."""
    lines = [f"### Why: answer-level diagnostics ({mode} run and tried arms)", ""]
    docqa = _ordered(diag, "docqa")
    if docqa:
        ref = next((d for _, d in docqa if "always_yes_accuracy" in d), None)
        consts = ("" if ref is None else f"A model that answers one constant scores {_pct(ref['always_yes_accuracy'])}% "
                  f"(always *yes*) or {_pct(ref['always_no_accuracy'])}% (always *no*) overall here, without reading "
                  "a passage; ")
        cls = next((d["yesno_classes"] for _, d in docqa if "yesno_classes" in d), None)
        pooled_text = (" (of the row's seed-0 run; *N seeds:* the mean over the arm's seeds with the pooled seed × "
                       "example CI)") if any("yesno_balanced_vs_base_pooled" in d for _, d in docqa) else ""
        cls_text = f" — {cls['yes']} *yes* and {cls['no']} *no* questions here" if cls else ""
        lines += ["**docqa** — accuracy by question kind; the *balanced* yes/no accuracy (mean recall of the *yes* and "
                  f"the *no* questions{cls_text}: a constant answer scores exactly 50.0 on it and an answer that "
                  "ignores the passage 50 in expectation, so only reading lifts it); how many yes/no answers are a "
                  "bare yes/no, and the share of those that say *yes*. The balanced CI is a paired bootstrap "
                  f"stratified by class{pooled_text}. {consts}a *yes* share near 0 or 100% means the arm collapsed "
                  "to that "
                  "constant. The last four columns need the arm's cached answers (— where this checkout had none).", "",
                  "| arm | yes/no acc | balanced yes/no acc (Δ vs base, 95% CI) | span acc | bare yes/no | *yes* share "
                  "| answers yes / no / neither | one constant? |", "|---|---|---|---|---|---|---|---|"]
        for name, d in docqa:
            a, y = d.get("accuracy_by_kind", {}), d.get("yesno_answers")
            said = f"{y['yes']} / {y['no']} / {y['neither']}" if y else "—"
            vs, pooled = d.get("yesno_balanced_vs_base"), d.get("yesno_balanced_vs_base_pooled")
            bal = _pct(d.get("yesno_balanced_accuracy")) + (f" ({_points(vs)})" if vs else "")
            if pooled:
                bal += f"; {pooled['seeds']} seeds: {_points(pooled)}"
            lines.append(f"| `{name}` | {_pct(a.get('yesno'))} | {bal} | "
                         f"{_pct(a.get('span'))} | {_pct(d.get('yesno_strict_share'))} | "
                         f"{_pct(d.get('yesno_yes_share'))} | {said} | "
                         f"{_constant(d.get('yesno_yes_share'))} |")
        lines.append("")
    instruct = _ordered(diag, "instruct")
    if instruct:
        from opentao.tasks.instruct import HELD_OUT_TYPES

        types = sorted({t for _, d in instruct for t in d["pass_rate"]},
                       key=lambda t: (t not in HELD_OUT_TYPES, t))
        lines += ["**instruct** — pass rate (%) of each constraint type on the test requests (held-out types, never "
                  "seen in training, first), and how many answers passed every constraint but failed relevance.", "",
                  "| arm | " + " | ".join(f"{t}{' (held out)' if t in HELD_OUT_TYPES else ''}" for t in types)
                  + " | all pass, irrelevant |", "|---|" + "---|" * (len(types) + 1)]
        for name, d in instruct:
            lines.append(f"| `{name}` | " + " | ".join(_pct(d["pass_rate"].get(t)) for t in types)
                         + f" | {d['all_constraints_pass_but_irrelevant']} |")
        lines.append("")
    return "\n".join(lines)
