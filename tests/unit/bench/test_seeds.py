"""Arms at several seeds: the pooled (seed × example) bootstrap, per-seed result files, the seed loop and the
rendering of seeded arms (no model runs)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import yaml

from opentao.bench import report, table
from opentao.bench.arms import Runner, plan, pool_k_for, seed_runs
from opentao.bench.results import ArmSpec, ResultDir, parse_stem, result_stem, run_arms
from opentao.bench.stats import (aligned_seeds, paired_bootstrap, paired_bootstrap_balanced, pooled_paired_bootstrap,
                                 pooled_paired_bootstrap_balanced)
from opentao.errors import TaoError
from opentao.store import RunStore

REPO = Path(__file__).resolve().parents[3]
BENCH = table.Bench(REPO / "benchmarks")
KEYS = ("delta", "ci95", "n", "n_boot")


def coin(n: int, p: float, rng: random.Random) -> list[bool]:
    return [rng.random() < p for _ in range(n)]


def width(d: dict) -> float:
    return d["ci95"][1] - d["ci95"][0]


# ------------------------------------------------------------------------------------- pooled bootstrap


@pytest.mark.parametrize("seed,n,n_boot", [(0, 40, 2000), (7, 13, 300), (123, 120, 500)])
def test_one_seed_is_the_paired_bootstrap_exactly(seed: int, n: int, n_boot: int) -> None:
    rng = random.Random(seed + 1)
    base, arm = coin(n, 0.3, rng), coin(n, 0.5, rng)
    pooled = pooled_paired_bootstrap([base], [arm], seed=seed, n_boot=n_boot)
    assert {k: pooled[k] for k in KEYS} == paired_bootstrap(base, arm, seed=seed, n_boot=n_boot)
    assert pooled["seeds"] == 1 and pooled["per_seed"] == [pooled["delta"]]
    classes = ["yes" if rng.random() < 0.6 else "no" for _ in range(n)]
    pooled = pooled_paired_bootstrap_balanced([base], [arm], classes, seed=seed, n_boot=n_boot)
    assert {k: pooled[k] for k in KEYS} == paired_bootstrap_balanced(base, arm, classes, seed=seed, n_boot=n_boot)


def test_pooled_delta_is_the_mean_of_the_seeds() -> None:
    base = [False] * 10
    arms = [[True] * 5 + [False] * 5, [True] * 2 + [False] * 8, [True] * 8 + [False] * 2]  # +50, +20, +80
    out = pooled_paired_bootstrap([base] * 3, arms, n_boot=500, seed=2)
    assert out["per_seed"] == [0.5, 0.2, 0.8] and out["delta"] == pytest.approx(0.5)
    assert out["seeds"] == 3 and out["n"] == 10 and out["n_boot"] == 500
    assert out["ci95"][0] <= 0.5 <= out["ci95"][1]
    assert pooled_paired_bootstrap([base] * 3, arms, n_boot=500, seed=2) == out  # deterministic for a seed


def test_seeds_that_disagree_widen_the_ci() -> None:
    base = [i % 3 == 0 for i in range(120)]  # 40 right
    wrong, right = [i for i in range(120) if i % 3], [i for i in range(120) if i % 3 == 0]
    # three seeds of an arm: one fixes 30 examples (+25 points), one 3 (+2.5), one breaks 10 (-8.3)
    arms = [[b or i in wrong[:30] for i, b in enumerate(base)], [b or i in wrong[:3] for i, b in enumerate(base)],
            [b and i not in right[:10] for i, b in enumerate(base)]]
    singles = [paired_bootstrap(base, a, seed=0) for a in arms]
    pooled = pooled_paired_bootstrap([base] * 3, arms, seed=0)
    assert [round(s["delta"], 3) for s in singles] == [0.25, 0.025, -0.083] == [round(x, 3) for x in pooled["per_seed"]]
    assert width(pooled) > 1.5 * max(width(s) for s in singles)
    assert pooled["ci95"][0] < min(pooled["per_seed"]) + 0.05 and pooled["ci95"][1] > max(pooled["per_seed"]) - 0.05


def test_seeds_that_agree_keep_the_test_set_variance() -> None:
    # the seeds ran on one test set: three identical seeds must not shrink the CI as three test sets would (1/sqrt 3)
    rng = random.Random(9)
    base, arm = coin(120, 0.3, rng), coin(120, 0.5, rng)
    single = paired_bootstrap(base, arm, seed=0)
    pooled = pooled_paired_bootstrap([base] * 3, [arm] * 3, seed=0)
    assert pooled["delta"] == pytest.approx(single["delta"]) and pooled["per_seed"] == [single["delta"]] * 3
    assert 0.85 * width(single) <= width(pooled) <= 1.15 * width(single)


def test_pooled_balanced_bootstrap() -> None:
    classes = ["yes"] * 8 + ["no"] * 2
    base = [False] * 8 + [True] * 2  # always "no"
    always_yes = [True] * 8 + [False] * 2  # balanced 50 → 50 at this seed
    perfect = [True] * 10  # balanced 50 → 100
    out = pooled_paired_bootstrap_balanced([base] * 2, [always_yes, perfect], classes, n_boot=500, seed=1)
    assert out["per_seed"] == [0.0, 0.5] and out["delta"] == 0.25 and out["seeds"] == 2
    lo, hi = out["ci95"]
    assert lo == 0.0 and hi == 0.5  # every resample is one of {0, 0.25, 0.5}; the seed draw spans them


@pytest.mark.parametrize("base,arm", [
    ([[True]], [[True], [False]]),  # one base per seed
    ([], []),  # zero seeds
    ([[True, False], [True]], [[True, True], [True]]),  # seeds on different numbers of examples
    ([[True], [True]], [[True], [True, False]]),
    ([[]], [[]]),  # zero examples
])
def test_pooled_bootstrap_bad_input(base: list, arm: list) -> None:
    with pytest.raises(TaoError):
        pooled_paired_bootstrap(base, arm)


def test_pooled_balanced_bad_input_and_alignment() -> None:
    with pytest.raises(TaoError):
        pooled_paired_bootstrap_balanced([[True, False]], [[True, True]], ["yes", "yes"])  # one class
    with pytest.raises(TaoError):
        pooled_paired_bootstrap_balanced([[True, False]], [[True, True]], ["yes"])  # a class per example
    ids, b, arms = aligned_seeds({"ids": ["x", "y", "z"], "correct": [True, False, True]},
                                 [{"ids": ["z", "x", "y"], "correct": [False, True, True]},
                                  {"ids": ["y", "z"], "correct": [False, True]}])
    assert ids == ["y", "z"] and b == [False, True] and arms == [[True, False], [False, True]]
    with pytest.raises(TaoError):
        aligned_seeds({"ids": ["x"], "correct": [True]}, [{"ids": ["y"], "correct": [True]}])
    with pytest.raises(TaoError):
        aligned_seeds({"ids": ["x"], "correct": [True]}, [])


# ------------------------------------------------------------------------------------ names, skip, loop


def test_result_names_per_seed(tmp_path: Path) -> None:
    assert result_stem("sql-tao") == "sql-tao" and result_stem("sql-tao", 2) == "sql-tao-s2"
    assert parse_stem("sql-tao-s2") == ("sql-tao", 2) and parse_stem("docqa-tao-steps4") == ("docqa-tao-steps4", 0)
    assert parse_stem("docqa-tao-k16") == ("docqa-tao-k16", 0)
    with pytest.raises(TaoError):
        result_stem("sql-tao-s1")  # an arm name that reads as a seed suffix
    with pytest.raises(TaoError):
        result_stem("sql-tao", -1)
    rd = ResultDir(tmp_path, "full")
    assert rd.path("sql-tao").name == "full-sql-tao.json" and rd.path("sql-tao", 1).name == "full-sql-tao-s1.json"
    rd.save("sql-tao", {"v": 0})
    rd.save("sql-tao", {"v": 2}, 2)
    rd.save("sql-sft", {"v": 1}, 1)
    assert rd.done("sql-tao") and rd.done("sql-tao", 2) and not rd.done("sql-tao", 1)
    assert rd.load("sql-tao", 2) == {"v": 2}
    assert rd.all() == {"sql-tao": {"v": 0}}  # seed 0 only, under the plain names
    assert rd.by_seed() == {"sql-sft": {1: {"v": 1}}, "sql-tao": {0: {"v": 0}, 2: {"v": 2}}}


def test_committed_results_load_as_seed_0() -> None:
    rd = ResultDir(REPO / "benchmarks" / "results" / "n64", "full")  # the archived run, written before seeds
    by_seed = rd.by_seed()
    assert {"sql-base", "sql-tao", "docqa-tao-k16", "multitask"} <= set(by_seed)
    assert set(rd.all()) == {n for n, runs in by_seed.items() if 0 in runs}
    assert all(runs[0]["seed"] == 0 for runs in by_seed.values() if 0 in runs)


def test_run_arms_at_a_seed_skips_only_that_seed(tmp_path: Path) -> None:
    calls: list[str] = []
    rd = ResultDir(tmp_path, "full")
    specs = [ArmSpec("sql-tao", "tao", ("sql",))]
    rd.save("sql-tao", {"seed": 0})
    status = run_arms(specs, lambda s: calls.append(s.name) or {"evals": {}}, rd, seed=1, config={},
                      report=lambda m: None)
    assert status == {"sql-tao": "done"} and calls == ["sql-tao"]
    assert rd.load("sql-tao", 1)["seed"] == 1 and rd.load("sql-tao") == {"seed": 0}  # seed 0 untouched
    assert run_arms(specs, lambda s: calls.append(s.name) or {}, rd, seed=1, config={},
                    report=lambda m: None) == {"sql-tao": "skipped"}
    assert calls == ["sql-tao"]


def test_seed_runs_repeat_the_seeded_kinds_but_not_the_base() -> None:
    sizes = BENCH.sizes("full")
    assert BENCH.seeds("full") == (0, 1, 2) and BENCH.seeds("quick") == (0,)
    assert BENCH.seeded() == ("base", "sft", "tao", "oracle", "scale")
    runs = seed_runs(plan(sizes), BENCH.seeds("full"), ("base", "sft", "tao", "oracle"))
    assert [s for s, _ in runs] == [0, 1, 2] and runs[0][1] == plan(sizes)
    for _, specs in runs[1:]:
        want = {f"{t}-{a}" for t in sizes.tasks for a in ("sft", "tao", "oracle")}
        assert sorted(s.name for s in specs) == sorted(want)
    # with the scale kind seeded, the K and rounds arms run at every seed too, from that seed's K=16 pool
    shipped = seed_runs(plan(sizes), BENCH.seeds("full"), BENCH.seeded())
    assert [s.name for s in shipped[1][1]] == [s.name for s in plan(sizes) if s.arm != "base"]
    assert pool_k_for(sizes, shipped[1][1]) == {"docqa": 16, "sql": 16, "instruct": 8, "sql-flights": 8}
    assert seed_runs(plan(sizes), (0,), BENCH.seeded()) == [(0, plan(sizes))]
    for bad in ([], [1, 2], [0, 0], [0, -1], [0, "1"], [0, True]):
        with pytest.raises(TaoError):
            seed_runs(plan(sizes), bad, ("tao",))
    with pytest.raises(TaoError):
        seed_runs(plan(sizes), [0, 1], ("tao", "taoo"))
    assert (sizes.k, sizes.k_pool) == (8, 16)
    assert set(pool_k_for(sizes, runs[1][1]).values()) == {8}  # no K arm at that seed: no K=16 pool
    assert pool_k_for(sizes, plan(sizes)) == {t: sizes.task_pool_k(t) for t in sizes.tasks}  # seed 0's rule
    r = Runner(sizes, "w", seed=1, pool_k={"docqa": 8})
    assert r.pool_k == {"docqa": 8} and Runner(sizes, "w").pool_k == {}


def test_runner_at_a_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.bench.test_benchmark import _task_dir

    r0, r1 = Runner(BENCH.sizes("quick"), tmp_path / "runs"), Runner(BENCH.sizes("quick"), tmp_path / "runs", seed=1)
    task_dir = _task_dir(tmp_path)
    for r in (r0, r1):
        monkeypatch.setitem(r._dirs, "docqa", task_dir)
    assert r0.arm_dir("docqa", "docqa-tao") == tmp_path / "runs" / "docqa" / "docqa-tao"
    assert r1.arm_dir("docqa", "docqa-tao") == tmp_path / "runs" / "docqa" / "docqa-tao-s1"
    assert r1.tag("pool-k4") == "pool-k4-s1" and r0.tag("pool-k4") == "pool-k4"  # a pool per seed
    assert r1.base_dir("docqa") == r0.base_dir("docqa") == tmp_path / "runs" / "docqa" / "docqa-base"
    c0, c1 = r0.config("docqa", tmp_path / "a"), r1.config("docqa", tmp_path / "b")
    assert (c0.seed, c0.train.seed, c1.seed, c1.train.seed) == (0, 0, 1, 1)  # sampling and training order/init
    assert c0.model_dump(exclude={"seed", "train", "run_dir"}) == c1.model_dump(exclude={"seed", "train", "run_dir"})


def _fake_runner(monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple[str, int]], dict[int, int | None]]:
    """table.main with a Runner that only records ``(arm, seed)`` runs and each seed's pool K; no diagnose/render."""
    ran: list[tuple[str, int]] = []
    pools: dict[int, int | None] = {}

    class FakeRunner:
        def __init__(self, sizes, work, seed=0, pool_k=None):
            self.seed = seed
            pools[seed] = pool_k

        def run(self, spec):
            ran.append((spec.name, self.seed))
            return {"evals": {}}

    monkeypatch.setattr(table, "Runner", FakeRunner)
    monkeypatch.setattr(table, "diagnose", lambda bench, mode: None)
    monkeypatch.setattr(table, "render", lambda bench, modes: None)
    return ran, pools


def test_main_runs_each_seed_once_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = yaml.safe_load((BENCH.here / "tao_table.yaml").read_text())
    settings["modes"]["quick"]["seeds"] = [0, 3]
    settings["seeded"] = ["base", "sft", "tao", "oracle"]  # the headline kinds only: no K arm at seed 3
    (tmp_path / "tao_table.yaml").write_text(yaml.safe_dump(settings))
    ran, pools = _fake_runner(monkeypatch)
    assert table.main(["--quick"], here=tmp_path) == 0
    n_plan = len(plan(table.Bench(tmp_path).sizes("quick")))
    again = {(n, s) for n, s in ran if s == 3}
    assert len(ran) == n_plan + 9 and again == {(f"{t}-{a}", 3) for t in ("sql", "docqa", "instruct")
                                                for a in ("sft", "tao", "oracle")}
    sizes = table.Bench(tmp_path).sizes("quick")
    assert pools == {0: {t: sizes.task_pool_k(t) for t in sizes.tasks},  # seed 0 runs every arm, K arms too
                     3: {"sql": 4, "docqa": 4, "instruct": 4}}  # no K-scaling arm at seed 3: K=4 pools
    rd = ResultDir(tmp_path / "results", "quick")
    assert rd.load("sql-tao", 3)["seed"] == 3 and rd.load("sql-tao")["seed"] == 0
    assert not rd.done("sql-base", 3) and not rd.done("multitask", 3)
    (tmp_path / "results" / "quick-docqa-oracle-s3.json").unlink()
    ran.clear()
    assert table.main(["--quick"], here=tmp_path) == 0
    assert ran == [("docqa-oracle", 3)]  # only the missing (arm, seed) reruns


def test_main_seeds_flag_runs_only_those_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    settings = yaml.safe_load((BENCH.here / "tao_table.yaml").read_text())
    settings["modes"]["quick"]["seeds"] = [0, 1, 2]
    (tmp_path / "tao_table.yaml").write_text(yaml.safe_dump(settings))
    ran, _ = _fake_runner(monkeypatch)
    assert table.main(["--quick", "--only", "sql-tao", "--seeds", "2"], here=tmp_path) == 0
    assert ran == [("sql-tao", 2)]  # neither seed 0 nor seed 1
    with pytest.raises(SystemExit):
        table.main(["--quick", "--seeds", "5"], here=tmp_path)
    assert "--seeds [5]: not among the seeds" in capsys.readouterr().err
    assert ran == [("sql-tao", 2)]


def test_main_refuses_bad_seeds(tmp_path: Path) -> None:
    settings = yaml.safe_load((BENCH.here / "tao_table.yaml").read_text())
    settings["modes"]["quick"]["seeds"] = [1, 2]
    (tmp_path / "tao_table.yaml").write_text(yaml.safe_dump(settings))
    with pytest.raises(TaoError, match="starting with 0"):
        table.main(["--quick"], here=tmp_path)


# ------------------------------------------------------------------------------------------- rendering


def _eval(task: str, correct: list[bool], tokens: float = 10.0) -> dict:
    from tests.unit.bench.test_benchmark import _eval as ev

    return ev(task, correct, tokens)


def seeded_results() -> dict[str, dict[int, dict]]:
    """fake_results at seed 0, plus sql TAO at seeds 1 and 2 (10, 4 and 7 of 20 right; base 4 of 20)."""
    from tests.unit.bench.test_benchmark import fake_results

    by_seed = {name: {0: {**d, "seed": 0}} for name, d in fake_results().items()}
    for seed, k in ((1, 4), (2, 7)):
        by_seed["sql-tao"][seed] = {"evals": {"sql": _eval("sql", [i >= 20 - k for i in range(20)])},
                                    "params": {"k": 4, "rounds": 1}, "seed": seed, "wall_seconds": 30}
    return by_seed


def test_render_seeded_arm_mean_and_pooled_ci() -> None:
    by_seed = seeded_results()
    results = {n: r[0] for n, r in by_seed.items()}
    md = report.render_mode(results, "full", "results/full", by_seed=by_seed)
    base = results["sql-base"]["evals"]["sql"]["per_example"]["correct"]
    arms = [by_seed["sql-tao"][s]["evals"]["sql"]["per_example"]["correct"] for s in (0, 1, 2)]
    pooled = pooled_paired_bootstrap([base] * 3, arms)
    row = next(line for line in md.splitlines() if line.startswith("| sql | 20 |"))
    assert f"| 35.0 (3 seeds) ({report._points(pooled)}) |" in row  # (50 + 20 + 35) / 3
    assert pooled["per_seed"] == [0.3, 0.0, 0.15]  # seed 1 gets 4 right, none of them the base's 4
    assert "| 30.0 (+10.0 [" in row  # labeled SFT: one seed, unchanged
    assert "(seeds 0, 1, 2)" in md and "### Seeds" in md
    assert "| sql | TAO (no labels) | 0, 1, 2 | 50.0 / 20.0 / 35.0 | +30.0 / +0.0 / +15.0 |" in md
    # without the other seeds the table is today's
    plain = report.render_mode(results, "full", "results/full")
    assert "(3 seeds)" not in plain and "### Seeds" not in plain and "| 50.0 (+30.0 [" in plain
    assert report.render_mode(results, "full", "results/full", by_seed={n: {0: d} for n, d in results.items()}) == plain


def test_targets_use_the_mean_over_seeds() -> None:
    by_seed = seeded_results()
    results = {n: r[0] for n, r in by_seed.items()}

    def met(by: dict | None) -> bool | None:
        return next(t["met"] for t in report.targets(results, by)
                    if t["task"] == "sql" and t["target"] == "TAO ≥ base + 10 points, CI > 0")

    assert met(None) is True  # seed 0 alone: 20% → 50%
    by_seed["sql-tao"][1]["evals"]["sql"] = _eval("sql", [False] * 20)
    by_seed["sql-tao"][2]["evals"]["sql"] = _eval("sql", [False] * 20)
    assert met(by_seed) is False  # mean (50 + 0 + 0) / 3 = 16.7 < 20 + 10


def test_render_readme_with_seed_files(tmp_path: Path) -> None:
    shutil.copy(BENCH.here / "tao_table.yaml", tmp_path / "tao_table.yaml")
    rd = ResultDir(tmp_path / "results", "full")
    for name, runs in seeded_results().items():
        for seed, data in runs.items():
            rd.save(name, data, seed)
    assert (tmp_path / "results" / "full-sql-tao-s2.json").is_file()
    table.render(table.Bench(tmp_path), ["full"])
    md = (tmp_path / "README.md").read_text()
    assert "35.0 (3 seeds) (" in md and "### Seeds" in md
    assert "full-sql-tao-s2" not in md  # seed files are folded into their arm, not listed as arms


def test_diagnose_pools_docqa_balanced_accuracy_over_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    shutil.copy(BENCH.here / "tao_table.yaml", tmp_path / "tao_table.yaml")
    bench = table.Bench(tmp_path)
    gold = [{"id": "a", "kind": "yesno", "answer": "yes"}, {"id": "b", "kind": "yesno", "answer": "no"},
            {"id": "c", "kind": "span", "answer": "Paris"}, {"id": "d", "kind": "yesno", "answer": "yes"}]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gold))
    monkeypatch.setattr(table, "test_file", lambda task: tmp_path / "test.jsonl")
    rd = ResultDir(tmp_path / "results", "full")

    def res(correct: list[bool]) -> dict:
        return {"tasks": ["docqa"], "evals": {"docqa": {"accuracy": sum(correct) / 4, "per_example": {
            "ids": ["a", "b", "c", "d"], "correct": correct}}}}

    rd.save("docqa-base", res([False, True, False, False]))  # always "no": balanced 50
    rd.save("docqa-tao", res([True, True, False, True]))  # balanced 100: +50
    rd.save("docqa-tao", res([True, False, False, True]), 1)  # always "yes": balanced 50: +0
    out = json.loads(table.diagnose(bench, "full").read_text())
    entry = out["full-docqa-tao"]["docqa"]
    pooled = entry["yesno_balanced_vs_base_pooled"]
    assert entry["yesno_balanced_vs_base"]["delta"] == 0.5  # seed 0 alone, as before
    assert pooled["per_seed"] == [0.5, 0.0] and pooled["delta"] == 0.25 and pooled["seeds"] == 2 and pooled["n"] == 3
    assert "full-docqa-tao-s1" not in out and "yesno_balanced_vs_base_pooled" not in out["full-docqa-base"]["docqa"]
    md = report.render_diagnostics(out, "full")
    assert "; 2 seeds: +25.0 [" in md and "*N seeds:*" in md


def test_a_scaling_curve_is_read_at_the_seeds_all_its_points_ran() -> None:
    from opentao.bench.targets import Scores

    by_seed = seeded_results()
    results = {n: r[0] for n, r in by_seed.items()}
    k_target = "quality non-decreasing in K (within CI) and highest at the largest, on ≥ 2 tasks"

    def k_detail(by: dict) -> str:
        return next(t["detail"] for t in report.targets(results, by) if t["target"] == k_target)

    # sql-tao-k2 ran at seed 0 only: the curve is seed 0's (k2 40 → k4 50), not k4's 3-seed mean
    assert "sql: 40.0 → 50.0;" in k_detail(by_seed)
    k2 = [[i < 8 for i in range(20)], [i < 9 for i in range(20)], [i < 7 for i in range(20)]]
    for seed in (1, 2):
        by_seed["sql-tao-k2"][seed] = {"evals": {"sql": _eval("sql", k2[seed])}, "params": {"k": 2, "rounds": 1},
                                       "seed": seed}
    # now every point has seeds 0-2: k2 (40 + 45 + 35) / 3 = 40 → k4 35, a drop, so the top is no longer K=4
    assert "sql: 40.0 → 35.0 (3 seeds)" in k_detail(by_seed)
    step = Scores(results, by_seed, None).step("sql", "sql-tao-k2", "sql-tao", (0, 1, 2))
    k4 = [by_seed["sql-tao"][s]["evals"]["sql"]["per_example"]["correct"] for s in (0, 1, 2)]
    assert step == pooled_paired_bootstrap(k2, k4)
    assert step["per_seed"] == [0.1, -0.25, 0.0]
    # one seed: the plain paired bootstrap's numbers, as before seeds
    assert Scores(results, by_seed, None).step("sql", "sql-tao-k2", "sql-tao") == pooled_paired_bootstrap(k2[:1], k4[:1])
    md = report.render_mode(results, "full", "results/full", by_seed=by_seed)
    assert "| sql | 2 | 1 | 40.0 (3 seeds) |" in md


def test_run_arms_replaces_the_files_of_arms_the_runner_ran_again(tmp_path: Path) -> None:
    rd = ResultDir(tmp_path, "full")
    rd.save("docqa-tao", {"evals": {"docqa": {"accuracy": 0.1}}, "wall_seconds": 1.0}, 1)  # an old seed-1 run
    first = ArmSpec("docqa-tao", "tao", ("docqa",), {"k": 8, "rounds": 1})
    r2 = ArmSpec("docqa-tao-r2", "scale", ("docqa",), {"k": 8, "rounds": 2})

    def runner(spec: ArmSpec) -> dict:
        assert spec.name == "docqa-tao-r2"
        return {"evals": {"docqa": {"accuracy": 0.3}},
                "rebuilt": [(first, {"evals": {"docqa": {"accuracy": 0.2}}, "rerun_for": spec.name,
                                     "wall_seconds": 5.0})]}

    lines: list[str] = []
    status = run_arms([first, r2], runner, rd, seed=1, config={"sizes": {}}, report=lines.append)
    assert status == {"docqa-tao": "redone", "docqa-tao-r2": "done"}
    new = rd.load("docqa-tao", 1)
    assert new["evals"]["docqa"]["accuracy"] == 0.2 and new["rerun_for"] == "docqa-tao-r2"
    assert (new["seed"], new["arm"], new["params"], new["wall_seconds"]) == (1, "tao", {"k": 8, "rounds": 1}, 5.0)
    assert "rebuilt" not in rd.load("docqa-tao-r2", 1) and rd.load("docqa-tao-r2", 1)["evals"]["docqa"]["accuracy"] == 0.3
    assert any(line.startswith("[redo] docqa-tao (seed 1)") for line in lines)


def test_a_round_whose_model_is_gone_runs_the_rounds_before_it_again(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """docqa-tao-r3 at seed 1 on a fresh clone: neither round 1's nor round 2's model is in runs/, so round 1 and
    round 2 run again in order (in the TAO arm's run directory), each reported for its result file to be replaced."""
    import opentao.pipeline as pipeline
    from tests.unit.bench.test_benchmark import _task_dir

    r = Runner(BENCH.sizes("quick"), tmp_path / "runs", seed=1)
    monkeypatch.setitem(r._dirs, "docqa", _task_dir(tmp_path))
    calls: list[str] = []
    run_dir = r.arm_dir("docqa", "docqa-tao")

    def trained(round_: int) -> dict:
        model = RunStore(run_dir).model_dir(round_)
        model.mkdir(parents=True, exist_ok=True)
        (model / "config.json").write_text("{}")
        return {"model": str(model)}

    def tao(task: str, name: str, k: int, **kw) -> dict:
        calls.append(f"tao {name}")
        return {"train": trained(1), "evals": {task: {}}}

    monkeypatch.setattr(r, "tao", tao)
    monkeypatch.setattr(pipeline, "open_run", lambda cfg, stages: RunStore(cfg.run_dir))
    monkeypatch.setattr(pipeline, "stage_generate", lambda store, cfg, round_: calls.append(f"generate r{round_}"))
    monkeypatch.setattr(r, "score_train", lambda store, cfg, round_: trained(round_))
    monkeypatch.setattr(r, "selection", lambda task, store, round_: {})
    monkeypatch.setattr(r, "eval", lambda task, store, cfg, model, label, round_: {"label": label})
    out = r.next_round("docqa", "docqa-tao-r3", 4, 3)
    assert calls == ["tao docqa-tao", "generate r2", "generate r3"]
    assert [(spec.name, spec.arm, spec.params) for spec, _ in out["rebuilt"]] == [
        ("docqa-tao", "tao", {"k": 4, "rounds": 1}), ("docqa-tao-r2", "scale", {"k": 4, "rounds": 2})]
    assert [res["rerun_for"] for _, res in out["rebuilt"]] == ["docqa-tao-r2", "docqa-tao-r3"]  # who needed it
    assert out["evals"]["docqa"]["label"] == "docqa-tao-r3"
    calls.clear()  # the models are there now: round 3 again reruns nothing before it
    assert "rebuilt" not in r.next_round("docqa", "docqa-tao-r3", 4, 3) and calls == ["generate r3"]
    with pytest.raises(TaoError, match="run that arm first"):  # a tried variant's chain is not rebuilt
        r.next_round("docqa", "try-x-r2", 4, 2, arm="try-docqa-x")


def test_only_does_not_change_a_seeds_pool_k(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--only docqa-oracle`` at seed 1 reads the K=8 pool the seed's docqa K arms share, not a fresh K=4 one."""
    settings = yaml.safe_load((BENCH.here / "tao_table.yaml").read_text())
    settings["modes"]["quick"].update(seeds=[0, 1], k_scale=[2, 4, 8])
    settings["seeded"] = ["sft", "tao", "oracle", "scale"]
    (tmp_path / "tao_table.yaml").write_text(yaml.safe_dump(settings))
    ran, pools = _fake_runner(monkeypatch)
    assert table.main(["--quick", "--only", "docqa-oracle", "--seeds", "1"], here=tmp_path) == 0
    assert ran == [("docqa-oracle", 1)]
    assert pools[1] == {"sql": 8, "docqa": 8, "instruct": 4}  # as a full run at seed 1 would have it


def test_tried_variants_run_at_the_seeds_they_list_on_the_plan_seeds_pools(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = yaml.safe_load((BENCH.here / "tao_table.yaml").read_text())
    settings["modes"]["full"]["seeds"] = [0, 1, 2]
    settings["seeded"] = ["base", "sft", "tao", "oracle", "scale"]
    (tmp_path / "tao_table.yaml").write_text(yaml.safe_dump(settings))
    tried = [{"task": "docqa", "variant": "tao-a", "changes": {"from": "tao"}, "why": "w", "seeds": [0, 2]},
             {"task": "sql", "variant": "tao-b", "changes": {"from": "tao"}, "why": "w"}]
    (tmp_path / "tried.yaml").write_text(yaml.safe_dump(tried))
    ran, pools = _fake_runner(monkeypatch)
    assert table.main(["--tried"], here=tmp_path) == 0
    assert ran == [("docqa-tao-a", 0), ("sql-tao-b", 0), ("docqa-tao-a", 2)]
    sizes = table.Bench(tmp_path).sizes("full")
    assert pools[2] == pool_k_for(sizes, seed_runs(plan(sizes), (0, 1, 2), settings["seeded"])[2][1])
    assert pools[2]["docqa"] == sizes.k_pool  # seed 2's plan pool (its K arms need K=16), not a K=8 one
    assert ResultDir(tmp_path / "results", "tried").load("docqa-tao-a", 2)["seed"] == 2
    ran.clear()
    assert table.main(["--tried"], here=tmp_path) == 0 and ran == []  # resumes: every (variant, seed) is done
    for bad in ([1, 2], [0, 0], [0, 7], "0"):
        tried[0]["seeds"] = bad
        (tmp_path / "tried.yaml").write_text(yaml.safe_dump(tried))
        with pytest.raises(TaoError, match="tried.yaml docqa-tao-a: seeds"):
            table.main(["--tried"], here=tmp_path)
