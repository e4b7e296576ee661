"""Benchmark machinery: paired bootstrap, resumable arm results, targets and report (no model runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from opentao.bench import report, table
from opentao.bench import targets as targets_mod
from opentao.bench.arms import plan
from opentao.bench.results import ArmSpec, ResultDir, run_arms
from opentao.bench.stats import aligned, paired_bootstrap
from opentao.errors import TaoError

REPO = Path(__file__).resolve().parents[3]


BENCH = table.Bench(REPO / "benchmarks")


def bench_in(tmp_path: Path) -> table.Bench:
    """A benchmark folder in ``tmp_path`` with the shipped sizes (tao_table.yaml)."""
    shutil.copy(BENCH.here / "tao_table.yaml", tmp_path / "tao_table.yaml")
    return table.Bench(tmp_path)


# ------------------------------------------------------------------------------------------ bootstrap


def test_bootstrap_identical_arms_has_zero_width() -> None:
    x = [True, False] * 20
    assert paired_bootstrap(x, x) == {"delta": 0.0, "ci95": [0.0, 0.0], "n": 40, "n_boot": 2000}


def test_bootstrap_all_flipped() -> None:
    out = paired_bootstrap([False] * 30, [True] * 30)
    assert out["delta"] == 1.0 and out["ci95"] == [1.0, 1.0]


def test_bootstrap_known_data() -> None:
    # 100 examples: arm fixes 20, breaks 5, the rest agree → delta +0.15; the paired SD of the mean difference is
    # sqrt((0.25 - 0.15**2) / 100) ≈ 0.0477, so the 95% CI is about 0.15 ± 0.094
    base = [False] * 20 + [True] * 5 + [True] * 40 + [False] * 35
    arm = [True] * 20 + [False] * 5 + [True] * 40 + [False] * 35
    out = paired_bootstrap(base, arm, n_boot=4000, seed=1)
    assert out["delta"] == pytest.approx(0.15)
    lo, hi = out["ci95"]
    assert 0.04 <= lo <= 0.08 and 0.22 <= hi <= 0.26
    assert paired_bootstrap(base, arm, n_boot=4000, seed=1) == out  # deterministic for a seed


def test_balanced_bootstrap() -> None:
    from opentao.bench.stats import paired_bootstrap_balanced

    # 8 "yes" and 2 "no" questions; the base answers "no" throughout, the arm "yes" throughout: plain accuracy
    # rises by 60 points, balanced accuracy not at all (50 → 50), in every resample
    classes = ["yes"] * 8 + ["no"] * 2
    base, arm = [False] * 8 + [True] * 2, [True] * 8 + [False] * 2
    out = paired_bootstrap_balanced(base, arm, classes)
    assert out["delta"] == 0.0 and out["ci95"] == [0.0, 0.0]
    # an arm that gets every question right: balanced 100 vs 50 → +50, also in every resample
    out = paired_bootstrap_balanced(base, [True] * 10, classes, n_boot=500, seed=3)
    assert out["delta"] == 0.5 and out["ci95"] == [0.5, 0.5]
    # mixed: the arm fixes 4 of 8 yes (recall +0.5) and breaks 1 of 2 no (recall -0.5): Δ 0, a CI either side
    mixed = [True] * 4 + [False] * 4 + [True, False]
    out = paired_bootstrap_balanced(base, mixed, classes, n_boot=1000, seed=1)
    assert out["delta"] == 0.0 and out["ci95"][0] < 0 < out["ci95"][1]
    with pytest.raises(TaoError):
        paired_bootstrap_balanced(base, arm, ["yes"] * 10)  # one class: balanced accuracy is undefined
    with pytest.raises(TaoError):
        paired_bootstrap_balanced(base, arm[:3], classes)


def test_bootstrap_errors_and_alignment() -> None:
    with pytest.raises(TaoError):
        paired_bootstrap([True], [True, False])
    with pytest.raises(TaoError):
        paired_bootstrap([], [])
    b, a = aligned({"ids": ["x", "y", "z"], "correct": [True, False, True]},
                   {"ids": ["z", "x"], "correct": [False, True]})
    assert (b, a) == ([True, True], [True, False])


# -------------------------------------------------------------------------------------------- resume


def test_resume_skips_finished_arms(tmp_path: Path) -> None:
    calls: list[str] = []

    def runner(spec: ArmSpec) -> dict:
        calls.append(spec.name)
        if spec.name == "b" and len(calls) == 2 and "crash" in spec.params:
            raise RuntimeError("session ended")
        return {"evals": {}, "value": len(calls)}

    specs = [ArmSpec("a", "base", ("sql",)), ArmSpec("b", "tao", ("sql",), {"crash": True}),
             ArmSpec("c", "sft", ("sql",))]
    results = ResultDir(tmp_path, "quick")
    with pytest.raises(RuntimeError):
        run_arms(specs, runner, results, seed=0, config={}, report=lambda m: None)
    assert results.done("a") and not results.done("b") and not results.done("c")
    status = run_arms(specs, runner, results, seed=0, config={"x": 1}, report=lambda m: None)
    assert status == {"a": "skipped", "b": "done", "c": "done"}
    assert calls == ["a", "b", "b", "c"]  # "a" never re-ran
    saved = results.load("c")
    assert saved["seed"] == 0 and saved["config"] == {"x": 1} and saved["arm"] == "sft" and "wall_seconds" in saved
    assert sorted(results.all()) == ["a", "b", "c"]
    assert run_arms(specs, runner, results, seed=0, config={}, report=lambda m: None) == dict.fromkeys("abc", "skipped")
    assert ResultDir(tmp_path, "full").all() == {}  # modes do not mix


def test_deadline_starts_no_new_arm(tmp_path: Path) -> None:
    status = run_arms([ArmSpec("a", "base", ("sql",))], lambda s: {}, ResultDir(tmp_path, "full"), seed=0,
                      config={}, report=lambda m: None, deadline=0.0)
    assert status == {"a": "deadline"}


def test_plan_names_are_unique_and_complete() -> None:
    for mode in ("quick", "full"):
        names = [s.name for s in plan(BENCH.sizes(mode))]
        assert len(names) == len(set(names))
        for task in ("sql", "docqa", "instruct"):
            assert {f"{task}-{a}" for a in ("base", "sft", "tao", "oracle")} <= set(names)
        assert ("multitask" in names) == BENCH.sizes(mode).multitask
    assert BENCH.sizes("quick").multitask
    sizes = BENCH.sizes("full")
    full = [s.name for s in plan(sizes)]
    assert "sql-flights-tao" in full and sizes.n_train >= 256  # the sizes: a second database, every prompt
    for task in sizes.scale_tasks:  # the default K's point of the K curve is the task's TAO arm itself
        assert {f"{task}-tao-k{k}" for k in sizes.k_scale if k != sizes.k} | {f"{task}-tao-r2", f"{task}-tao-r3"} \
            <= set(full)
        assert sizes.task_pool_k(task) == 16
    assert sizes.task_pool_k("instruct") == sizes.k  # no K curve there: its pool stops at the default K
    # round r needs round r-1: the plan orders them
    assert full.index("docqa-tao-r2") < full.index("docqa-tao-r3")
    tried = BENCH.tried_plan()
    assert len({s.name for s in tried}) == len(tried) and not {s.name for s in tried} & set(full)
    assert all(s.arm == "tried" and s.params["from"] in ("sft", "tao", "oracle") and s.params["why"] for s in tried)
    seen: set[str] = set()
    for s in tried:  # a later round continues a round-1 tried TAO variant of its task listed before it
        if s.params.get("rounds", 1) > 1:
            assert s.params["from"] == "tao" and f"{s.tasks[0]}-{s.params['after']}" in seen, s.name
        seen.add(s.name)


def test_a_later_tried_round_names_the_variant_it_continues(tmp_path) -> None:
    from opentao.bench.arms import Runner

    runner = Runner(BENCH.sizes("full"), tmp_path)
    for params in ({"from": "tao", "rounds": 2, "why": "w"}, {"from": "sft", "rounds": 2, "after": "x", "why": "w"}):
        with pytest.raises(TaoError, match="rounds > 1 needs from: tao and after"):
            runner.run_tried(ArmSpec("docqa-tao-r2-x", "tried", ("docqa",), params))


def test_tried_needs_full_sizes() -> None:
    with pytest.raises(SystemExit):
        table.main(["--quick", "--tried"], here=BENCH.here)


# ------------------------------------------------------------------------------------- targets, report


def _eval(task: str, correct: list[bool], tokens: float = 10.0) -> dict:
    n = len(correct)
    return {"task": task, "n": n, "correct": sum(correct), "accuracy": sum(correct) / n, "ci95": [0.0, 1.0],
            "mean_new_tokens": tokens, "mean_response_chars": 40.0, "seconds_per_request": 0.5,
            "parameters": 100, "per_example": {"ids": [f"e{i}" for i in range(n)], "correct": correct}}


def fake_results() -> dict[str, dict]:
    n = 20
    acc = lambda k: [i < k for i in range(n)]  # noqa: E731
    res: dict[str, dict] = {}
    for task, (b, s, t, o) in {"sql": (4, 6, 10, 11), "docqa": (5, 9, 6, 15), "instruct": (2, 2, 3, 3)}.items():
        res[f"{task}-base"] = {"evals": {task: _eval(task, acc(b))}, "params": {}}
        res[f"{task}-sft"] = {"evals": {task: _eval(task, acc(s))}, "params": {}}
        res[f"{task}-tao"] = {"evals": {task: _eval(task, acc(t), tokens=10.5 if task != "instruct" else 12)},
                              "params": {"k": 4, "rounds": 1}, "wall_seconds": 60}
        res[f"{task}-oracle"] = {"evals": {task: _eval(task, acc(o))}, "params": {}}
    res["multitask"] = {"evals": {t: _eval(t, acc(5)) for t in ("sql", "docqa", "instruct")}, "params": {"k": 4}}
    res["sql-tao-k2"] = {"evals": {"sql": _eval("sql", acc(8))}, "params": {"k": 2, "rounds": 1}}
    res["docqa-tao-k2"] = {"evals": {"docqa": _eval("docqa", acc(7))}, "params": {"k": 2, "rounds": 1}}
    res["docqa-tao-r2"] = {"evals": {"docqa": _eval("docqa", acc(8))}, "params": {"k": 4, "rounds": 2}}
    return res


def test_targets_from_results() -> None:
    got = {(t["target"], t["task"]): t["met"] for t in report.targets(fake_results())}
    assert got[("TAO ≥ base + 10 points, CI > 0", "sql")] is True  # 20% → 50%
    assert got[("TAO ≥ base + 10 points, CI > 0", "instruct")] is False
    assert got[("TAO ≥ labeled SFT", "docqa")] is False
    assert got[("TAO recovers ≥ 80% of the oracle's gain", "sql")] is True  # 6 of 7
    assert got[("TAO recovers ≥ 80% of the oracle's gain", "docqa")] is False  # 1 of 10
    assert got[("tuned mean response length ≤ 1.1× base", "sql")] is True
    assert got[("tuned mean response length ≤ 1.1× base", "instruct")] is False  # 1.2×
    # sql: k2 40% → k4 50% (up); docqa: k2 35% → k4 30% (a step down inside its CI, but k4 is not the highest)
    assert got[("quality non-decreasing in K (within CI) and highest at the largest, on ≥ 2 tasks", "all")] is False
    assert got[("quality non-decreasing in rounds (within CI) and highest at the largest, on ≥ 2 tasks", "all")] is None
    assert got[("no tuned arm answers one constant (docqa yes/no)", "docqa")] is None  # no diagnostics
    assert report.targets({})[0]["met"] is None
    flat = fake_results()
    flat["sql-oracle"]["evals"]["sql"] = flat["sql-base"]["evals"]["sql"]
    got = {(t["target"], t["task"]): t["met"] for t in report.targets(flat)}
    assert got[("TAO recovers ≥ 80% of the oracle's gain", "sql")] is None  # undefined, not "met"


def test_render_and_plots(tmp_path: Path) -> None:
    res = fake_results()
    res["instruct-oracle"]["train"] = {"skipped": "no training examples"}
    res["sql-tao"]["selection"] = {"examples": 7, "gold_correct_share_of_chosen": 0.5, "mean_reward": 0.25}
    md = report.render_mode(res, "quick", "results/quick")
    assert "| 0.25 | 7 (50%) |" in md  # the scaling table: the round's reward and its selection's precision
    assert "| instruct | 20 | 10.0 | 10.0 (+0.0 [+0.0, +0.0]) | 15.0 (+5.0 [" in md
    assert "15.0 † (+5.0" in md and "* sql: TAO (no labels) 7 (50% gold-correct)" in md
    assert "| sql | 20 | 20.0 | 30.0 (+10.0 [" in md
    assert "multi-task TAO" in md and "Compute scaling" in md and "**not met**" in md
    assert "| docqa | 4 | 2 | 40.0 |" in md
    report.plot_arms(res, tmp_path / "arms.png", "t")
    report.plot_scaling(res, tmp_path / "scaling.png", "t")
    assert (tmp_path / "arms.png").stat().st_size > 1000 and (tmp_path / "scaling.png").stat().st_size > 1000


def test_render_readme_from_json_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = bench_in(tmp_path)
    rd = ResultDir(tmp_path / "results", "quick")
    for name, data in fake_results().items():
        rd.save(name, data)
    table.render(bench, ["quick"])
    md = (tmp_path / "README.md").read_text()
    assert "## quick run" in md and (tmp_path / "results" / "quick-arms.png").is_file()
    assert json.loads((tmp_path / "results" / "quick-sql-tao.json").read_text())["params"]["k"] == 4


def test_render_tried_against_base_and_its_arm() -> None:
    res = fake_results()
    tried = {"sql-tao-steps4": {"tasks": ["sql"], "params": {"from": "tao", "steps": 4, "why": "fewer steps"},
                                "evals": {"sql": _eval("sql", [i < 12 for i in range(20)])},
                                "selection": {"examples": 5, "gold_correct_share_of_chosen": 0.4},
                                "train": {"steps": 4}}}
    md = report.render_tried(tried, res)
    # base 4/20, sql-tao 10/20, tried 12/20: +40.0 vs base, +10.0 vs its arm
    row = next(line for line in md.splitlines() if "`sql-tao-steps4`" in line)
    assert "| fewer steps | 5 (40%) | 4 | 60.0 | +40.0 [" in row and "| +10.0 [" in row



def test_render_tried_flags_a_regenerated_pool() -> None:
    res = fake_results()
    res["sql-tao"]["selection"] = {"candidates": 80, "gold_correct_share_of_candidates": 0.25}
    same = {"tasks": ["sql"], "params": {"from": "tao", "threshold": 1.0, "why": "stricter"},
            "evals": {"sql": _eval("sql", [i < 12 for i in range(20)])},
            "selection": {"candidates": 80, "gold_correct_share_of_candidates": 0.25}, "train": {"steps": 16}}
    other = {**same, "selection": {"candidates": 80, "gold_correct_share_of_candidates": 0.3}}
    assert report.same_pool(same, res["sql-tao"]) is True
    assert report.same_pool(other, res["sql-tao"]) is False
    # another K or another prompt count is another pool by design; labeled SFT has none
    assert report.same_pool({**other, "params": {"from": "tao", "k": 16}}, res["sql-tao"]) is None
    assert report.same_pool({**other, "params": {"from": "sft"}}, res["sql-sft"]) is None
    # a later round samples from the variant's own previous model: another pool by design, not a regenerated one
    assert report.same_pool({**other, "params": {"from": "tao", "rounds": 2, "after": "x"}}, res["sql-tao"]) is None
    # ... but a chain whose round 1 ran on a regenerated pool is marked at its later rounds too
    r2 = {**other, "tasks": ["sql"], "params": {"from": "tao", "rounds": 2, "after": "tao-thr1", "vs": "tao-r2"}}
    assert report.chain_same_pool(r2, None, {"sql-tao-thr1": {**other, "tasks": ["sql"]}}, res) is False
    assert report.chain_same_pool(r2, None, {"sql-tao-thr1": {**same, "tasks": ["sql"]}}, res) is True
    md = report.render_tried({"sql-tao-thr1": same}, res)
    assert "‡" not in md
    md = report.render_tried({"sql-tao-thr1": other}, res)
    row = next(line for line in md.splitlines() if "`sql-tao-thr1`" in line)
    assert row.endswith(" ‡ |") and "sampling noise" in md


def test_render_tried_compares_with_the_arm_vs_names() -> None:
    res = fake_results()  # plan docqa TAO: K=2 7/20, K=4 6/20
    tried = {"docqa-tao-cal-k2": {"tasks": ["docqa"], "params": {"from": "tao", "vs": "tao-k2", "k": 2, "why": "cal"},
                                  "evals": {"docqa": _eval("docqa", [i < 8 for i in range(20)])},
                                  "selection": {"examples": 12, "gold_correct_share_of_chosen": 0.5,
                                                "chosen_yesno": 10, "chosen_yes_share": 0.7}}}
    row = next(line for line in report.render_tried(tried, res).splitlines() if "`docqa-tao-cal-k2`" in line)
    assert "| `docqa-tao-k2` | +5.0 [" in row  # compared with the plan's K=2 arm (7/20), not K=4 (6/20)
    assert "| 12 (50%); 70% of its 10 yes/no say *yes* |" in row


def test_render_tried_compares_with_a_tried_control_on_its_pool() -> None:
    res = fake_results()  # plan sql-tao 10/20, from another pool (its candidates' gold-correct share 0.25)
    res["sql-tao"]["selection"] = {"candidates": 80, "gold_correct_share_of_candidates": 0.25}
    pool = {"candidates": 80, "gold_correct_share_of_candidates": 0.3}
    control = {"tasks": ["sql"], "params": {"from": "tao", "why": "control"}, "selection": dict(pool),
               "evals": {"sql": _eval("sql", [i < 9 for i in range(20)])}, "train": {"steps": 16}}
    rule = {"tasks": ["sql"], "params": {"from": "tao", "vs": "tao-regen", "why": "rule"}, "selection": dict(pool),
            "evals": {"sql": _eval("sql", [i < 12 for i in range(20)])}, "train": {"steps": 16}}
    md = report.render_tried({"sql-tao-regen": control, "sql-tao-rule": rule}, res)
    row = next(line for line in md.splitlines() if "`sql-tao-rule`" in line)
    assert "| `sql-tao-regen` | +15.0 [" in row and not row.endswith("‡ |")  # 12/20 vs the control's 9/20
    row = next(line for line in md.splitlines() if "`sql-tao-regen`" in line and "control" in line)
    assert "| `sql-tao` | -5.0 [" in row and row.endswith(" ‡ |")  # 9/20 vs the plan arm's 10/20: another pool


def test_tried_rows_take_why_and_vs_from_tried_yaml_now() -> None:
    saved = {"sql-tao-x": {"params": {"from": "tao", "threshold": 1.0, "why": "old text"}},
             "sql-tao-gone": {"params": {"from": "tao", "vs": "tao-k2", "why": "kept"}}}
    specs = [ArmSpec("sql-tao-x", "tried", ("sql",), {"from": "tao", "threshold": 0.5, "vs": "tao-y",
                                                      "why": "new text"})]
    out = table.described(saved, specs)
    # what it ran stays as recorded; what the row says and compares with is the file's
    assert out["sql-tao-x"]["params"] == {"from": "tao", "threshold": 1.0, "why": "new text", "vs": "tao-y"}
    assert out["sql-tao-gone"]["params"] == saved["sql-tao-gone"]["params"]
    assert saved["sql-tao-x"]["params"]["why"] == "old text"  # not modified in place


# ------------------------------------------------------------------------------------------ diagnostics


def test_docqa_diagnostics_detects_a_constant_answer() -> None:
    from opentao.bench.diagnose import docqa_diagnostics

    rows = [{"kind": "yesno", "answer": "yes"}] * 3 + [{"kind": "yesno", "answer": "no"}] + \
        [{"kind": "span", "answer": "Paris"}]
    d = docqa_diagnostics(zip(rows, ["yes", "Yes", "yes, because", "yes", "Paris"]))
    assert d["n"] == {"yesno": 4, "span": 1}
    assert d["yesno_yes_share"] == 1.0 and d["yesno_answers"] == {"yes": 4, "no": 0, "neither": 0}
    assert d["yesno_strict_share"] == 0.75  # "yes, because" is not a bare yes
    assert d["accuracy_by_kind"] == {"span": 1.0, "yesno": 0.75}
    assert d["always_yes_accuracy"] == 0.6 and d["always_no_accuracy"] == 0.2
    assert d["yesno_recall"] == {"yes": 1.0, "no": 0.0} and d["yesno_balanced_accuracy"] == 0.5
    assert d["yesno_classes"] == {"yes": 3, "no": 1}
    d = docqa_diagnostics(zip(rows, ["maybe", "no", "no", "no", "London"]))
    assert d["yesno_yes_share"] == 0.0 and d["yesno_answers"]["neither"] == 1 and d["accuracy_by_kind"]["span"] == 0
    md = report.render_diagnostics({"full-docqa-tao": {"docqa": d}}, "full")
    assert "| `full-docqa-tao` | 25.0 | 50.0 | 0.0 | 75.0 | 0.0 | 0 / 3 / 1 | **always no** |" in md
    assert "60.0% (always *yes*)" in md


def test_docqa_balanced_accuracy_from_correctness_alone() -> None:
    from opentao.bench.diagnose import docqa_correctness

    rows = [{"kind": "yesno", "answer": "yes"}] * 6 + [{"kind": "yesno", "answer": "no"}] * 2 + \
        [{"kind": "span", "answer": "Paris"}]
    # right on 3 of 6 yes and 2 of 2 no questions: plain yes/no accuracy 62.5, balanced (50 + 100) / 2 = 75
    d = docqa_correctness(zip(rows, [True] * 3 + [False] * 3 + [True, True, False]))
    assert d["yesno_recall"] == {"yes": 0.5, "no": 1.0} and d["yesno_balanced_accuracy"] == 0.75
    assert d["accuracy_by_kind"] == {"span": 0.0, "yesno": 0.625}
    assert docqa_correctness(zip(rows[:6], [True] * 6))["yesno_balanced_accuracy"] is None  # no "no" question
    # an entry from correctness alone renders, with — for what needs the answers themselves
    md = report.render_diagnostics({"full-docqa-tao-r3": {"docqa": d}}, "full")
    assert "| `full-docqa-tao-r3` | 62.5 | 75.0 | 0.0 | — | — | — | — |" in md


def test_diagnose_uses_per_example_correctness_without_cached_answers(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bench = bench_in(tmp_path)  # results/ and runs/ under tmp_path: no cached eval answers
    gold = [{"id": "a", "kind": "yesno", "answer": "yes"}, {"id": "b", "kind": "yesno", "answer": "no"},
            {"id": "c", "kind": "span", "answer": "Paris"}]
    test_file = tmp_path / "test.jsonl"
    test_file.write_text("".join(json.dumps(r) + "\n" for r in gold))
    monkeypatch.setattr(table, "test_file", lambda task: test_file)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "diagnostics-full.json").write_text(json.dumps(
        {"full-docqa-base": {"docqa": {"yesno_yes_share": 0.0}}, "full-gone": {"docqa": {"kept": 1}}}))
    ResultDir(tmp_path / "results", "full").save("docqa-base", {"tasks": ["docqa"], "evals": {"docqa": {
        "model": "base", "accuracy": 1 / 3, "per_example": {"ids": ["a", "b", "c"], "correct": [False, True, False]}}}})
    out = json.loads(table.diagnose(bench, "full").read_text())
    entry = out["full-docqa-base"]["docqa"]
    assert entry["yesno_balanced_accuracy"] == 0.5 and entry["yesno_recall"] == {"yes": 0.0, "no": 1.0}
    assert entry["yesno_yes_share"] == 0.0  # the earlier entry's answer-level fields are kept
    assert "full-gone" not in out  # an entry whose arm has no result file is dropped
    assert "yesno_balanced_vs_base" not in entry  # the base is not compared with itself
    ResultDir(tmp_path / "results", "full").save("docqa-tao", {"tasks": ["docqa"], "evals": {"docqa": {
        "model": "tao", "accuracy": 2 / 3, "per_example": {"ids": ["c", "a", "b"], "correct": [False, True, True]}}}})
    entry = json.loads(table.diagnose(bench, "full").read_text())["full-docqa-tao"]["docqa"]
    assert entry["yesno_balanced_accuracy"] == 1.0
    assert entry["yesno_balanced_vs_base"]["delta"] == 0.5 and entry["yesno_balanced_vs_base"]["n"] == 2


def test_diagnose_pools_a_seeded_tried_variant_against_its_arm(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    bench = bench_in(tmp_path)
    gold = [{"id": i, "kind": "yesno", "answer": a} for i, a in (("a", "yes"), ("b", "no"), ("c", "yes"), ("d", "no"))]
    test_file = tmp_path / "test.jsonl"
    test_file.write_text("".join(json.dumps(r) + "\n" for r in gold))
    monkeypatch.setattr(table, "test_file", lambda task: test_file)
    (tmp_path / "tried.yaml").write_text(yaml.safe_dump([{"task": "docqa", "variant": "tao-v", "seeds": [0, 1],
                                                          "changes": {"from": "tao"}, "why": "w"}]))
    ids = ["a", "b", "c", "d"]
    full, tried = ResultDir(tmp_path / "results", "full"), ResultDir(tmp_path / "results", "tried")

    def ev(correct: list[bool]) -> dict:
        return {"tasks": ["docqa"], "evals": {"docqa": {"accuracy": sum(correct) / 4,
                                                        "per_example": {"ids": ids, "correct": correct}}}}

    full.save("docqa-base", ev([False, True, False, True]))  # balanced 0.5: every no, no yes
    full.save("docqa-tao", ev([True, True, False, True]))  # balanced 0.75
    full.save("docqa-tao", ev([True, False, False, True]), seed=1)  # balanced 0.5
    tried.save("docqa-tao-v", ev([True, True, True, True]))  # balanced 1.0 at both seeds
    tried.save("docqa-tao-v", ev([True, True, True, True]), seed=1)
    entry = json.loads(table.diagnose(bench, "full").read_text())["tried-docqa-tao-v"]["docqa"]
    assert entry["yesno_balanced_vs_base_pooled"]["per_seed"] == [0.5, 0.5]
    vs = entry["yesno_balanced_vs_arm_pooled"]
    assert vs["arm"] == "docqa-tao" and vs["seed_list"] == [0, 1] and vs["per_seed"] == [0.25, 0.5]
    assert vs["delta"] == 0.375
    tried.path("docqa-tao-v", 1).unlink()  # one seed left: no pooled entries
    entry = json.loads(table.diagnose(bench, "full").read_text())["tried-docqa-tao-v"]["docqa"]
    assert "yesno_balanced_vs_arm_pooled" not in entry

def test_instruct_diagnostics_pass_rate_per_type() -> None:
    from opentao.bench.diagnose import instruct_diagnostics

    row = {"source": "nq", "question": "Who wrote Hamlet?", "reference": ["William Shakespeare"],
           "constraints": [{"type": "lowercase"}, {"type": "quotation"}]}
    d = instruct_diagnostics([(row, '"hamlet was written by william shakespeare"'), (row, "Shakespeare wrote it"),
                              (row, '"ok ok ok"')])
    assert d["n"] == 3 and d["count"] == {"lowercase": 3, "quotation": 3}
    assert d["pass_rate"] == {"lowercase": 2 / 3, "quotation": 2 / 3}
    assert d["all_constraints_pass_but_irrelevant"] == 1  # "ok ok ok" passes both but answers nothing
    md = report.render_diagnostics({"full-instruct-base": {"instruct": d}}, "full")
    assert "quotation (held out)" in md and "| `full-instruct-base` | 66.7 | 66.7 | 1 |" in md


# ------------------------------------------------------------------------------- arms as run configs


def _task_dir(tmp_path: Path) -> Path:
    """A docqa-shaped task folder with three prompts (no download)."""
    from tests.helpers.files import write_jsonl

    d = tmp_path / "docqa"
    d.mkdir()
    rows = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(3)]
    write_jsonl(d / "train.jsonl", rows)
    write_jsonl(d / "train_gold.jsonl", [{**r, "kind": "yesno", "answer": "yes"} for r in rows])
    write_jsonl(d / "test.jsonl", [{**r, "kind": "yesno", "answer": "yes"} for r in rows])
    return d


def test_arm_config_is_the_task_config_plus_the_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from opentao.bench.arms import ORACLE, Runner
    from opentao.config import load_config
    from opentao.tasks import get_task

    sizes = BENCH.sizes("quick")
    runner = Runner(sizes, tmp_path / "runs")
    monkeypatch.setitem(runner._dirs, "docqa", _task_dir(tmp_path))
    cfg = runner.config("docqa", tmp_path / "arm", k=2)
    shipped = load_config(get_task("docqa").config_path)
    assert cfg.score.scorers == shipped.score.scorers and cfg.generate.system_prompts == shipped.generate.system_prompts
    assert cfg.train.threshold == shipped.train.threshold and cfg.train.max_length == shipped.train.max_length
    assert (cfg.generate.k, cfg.max_prompts, cfg.eval.max_examples) == (2, sizes.n_train, sizes.n_test)
    assert (cfg.train.max_steps, cfg.train.batch_size, cfg.train.learning_rate) == (sizes.steps, sizes.batch, 3e-4)
    assert cfg.generate.batch_size == 32 and cfg.generate.prompts_per_part == 8 and cfg.train.epochs == 1
    assert cfg.prompts.endswith("train.jsonl") and cfg.eval.data.endswith("test.jsonl") and cfg.db is None
    oracle = runner.config("docqa", tmp_path / "o", **{"score.scorers": [{"type": ORACLE, "task": "docqa",
                                                                          "gold": "g"}], "train.threshold": 1.0})
    assert oracle.score.scorers[0]["type"] == ORACLE and oracle.train.threshold == 1.0


def test_seed_candidates_copies_the_first_k_slots(tmp_path: Path) -> None:
    from opentao.bench.arms import Runner
    from opentao.records import Candidate, Prompt
    from opentao.store import RunStore

    pool = RunStore(tmp_path / "pool")
    prompts = [Prompt(f"p{i}", [{"role": "user", "content": f"q{i}"}], 1) for i in range(3)]
    pool.write_part("prompts", "r1", prompts, Prompt.SCHEMA)
    cands = [Candidate(p.prompt_id, f"{p.prompt_id}#{j}", "plain", [], f"t{j}", f"r{j}", f"a{j}", 1)
             for p in prompts for j in range(12)]
    pool.write_part("candidates", "r1-00000", cands[:24], Candidate.SCHEMA)
    pool.write_part("candidates", "r1-00001", cands[24:], Candidate.SCHEMA)
    arm = RunStore(tmp_path / "arm")
    Runner(BENCH.sizes("quick"), tmp_path).seed_candidates(pool, arm, 10)
    got = {r["candidate_id"] for r in arm.read("candidates", 1)}
    assert got == {f"p{i}#{j}" for i in range(3) for j in range(10)}  # slots 10 and 11 left out (not "#1x" < "#2")
    assert {r["prompt_id"] for r in arm.read("prompts", 1)} == {"p0", "p1", "p2"}
    assert [p.name for p in arm.parts("candidates")] == [p.name for p in pool.parts("candidates")]


def test_a_task_no_arm_ran_stays_out_of_the_report(tmp_path: Path) -> None:
    """sql-flights is registered but has no result: no empty rows, targets or x-ticks for it."""
    assert "sql-flights" in report.TASKS
    res = fake_results()
    assert report.measured(res) == ("sql", "docqa", "instruct")
    md = report.render_mode(res, "quick", "results/quick")
    assert "sql-flights" not in md and "| instruct | 20 |" in md
    assert {t["task"] for t in report.targets(res)} == {"sql", "docqa", "instruct", "all"}
    res["sql-flights-base"] = {"evals": {"sql-flights": _eval("sql-flights", [True, False])}, "params": {}}
    assert report.measured(res)[-1] == "sql-flights" and "| sql-flights | 2 | 50.0 |" in report.render_mode(
        res, "quick", "results/quick")


def test_docqa_targets_use_balanced_accuracy_and_the_ci() -> None:
    """docqa's targets read balanced yes/no accuracy from the diagnostics; a gain whose CI reaches zero is not met;
    a tuned arm whose yes share is ~0 or ~1 is one constant answer; a rounds curve counts like the K curve."""
    res = fake_results()
    n = 20
    ids = [f"e{i}" for i in range(n)]
    classes = {i: ("yes" if j % 2 else "no") for j, i in enumerate(ids)}
    # the TAO arm gets right the first 6 examples: 3 yes, 3 no -> recall 0.3 each -> balanced 0.3 (accuracy 0.3)
    diag = {"docqa-base": {"docqa": {"yesno_class_of": classes}},
            "docqa-tao": {"docqa": {"yesno_balanced_vs_base": {"delta": 0.12, "ci95": [-0.01, 0.25]},
                                    "yesno_yes_share": 0.5}},
            "docqa-tao-k2": {"docqa": {"yesno_yes_share": 0.98}}}
    got = {(t["target"], t["task"]): t for t in targets_mod.targets(res, None, diag)}
    t = got[("TAO ≥ base + 10 points, CI > 0", "docqa")]
    assert t["met"] is False and t["detail"].startswith("balanced yes/no accuracy: base 25.0, TAO 30.0")
    diag["docqa-tao"]["docqa"]["yesno_balanced_vs_base"]["ci95"] = [0.02, 0.25]
    assert {(x["target"], x["task"]): x for x in targets_mod.targets(res, None, diag)}[
        ("TAO ≥ base + 10 points, CI > 0", "docqa")]["met"] is True
    const = got[("no tuned arm answers one constant (docqa yes/no)", "docqa")]
    assert const["met"] is False and "tao-k2" in const["detail"] and "tao," not in const["detail"]
    assert targets_mod.metric_name("docqa", None) == "accuracy" and targets_mod.metric_name("sql", diag) == "accuracy"
    # rounds: sql 50 -> 60 (r2), docqa 30 -> 40 (r2): both rise -> met
    res["sql-tao-r2"] = {"evals": {"sql": _eval("sql", [i < 12 for i in range(n)])}, "params": {"k": 4, "rounds": 2}}
    got = {(x["target"], x["task"]): x["met"] for x in targets_mod.targets(res, None, diag)}
    assert got[("quality non-decreasing in rounds (within CI) and highest at the largest, on ≥ 2 tasks", "all")]


def test_render_tried_seeds_pools_a_variant_with_its_arm_at_the_same_seeds() -> None:
    res = fake_results()  # sql base 4/20, plan sql-tao 10/20 at seed 0
    acc = lambda k: [i < k for i in range(20)]  # noqa: E731
    arm = {x: {"tasks": ["sql"], "evals": {"sql": _eval("sql", acc(k))}, "seed": x} for x, k in ((1, 8), (2, 9))}
    plan_seeds = {name: {0: d} for name, d in res.items()}
    plan_seeds["sql-tao"].update(arm)
    var = {x: {"tasks": ["sql"], "params": {"from": "tao", "why": "w"}, "seed": x, "train": {"steps": 4},
               "evals": {"sql": _eval("sql", acc(k))}} for x, k in ((0, 12), (1, 12), (2, 12))}
    md = report.render_tried({"sql-tao-v": var[0]}, res, tried_seeds={"sql-tao-v": var}, plan_seeds=plan_seeds)
    row = next(line for line in md.splitlines() if line.startswith("| sql | `sql-tao-v` | 0, 1, 2 |"))
    # 12/20 at every seed: +40 vs base 4/20; vs its arm (10, 8, 9 of 20) +10, +20, +15: mean +15.0
    assert "| 60.0 / 60.0 / 60.0 | 60.0 (+40.0 [" in row and "| `sql-tao`: 50.0 / 40.0 / 45.0 | +15.0 [" in row
    one = report.render_tried({"sql-tao-v": var[0]}, res, tried_seeds={"sql-tao-v": {0: var[0]}},
                              plan_seeds=plan_seeds)
    assert "Tried at several seeds" not in one  # a variant at seed 0 only: the seed-0 table says it all
