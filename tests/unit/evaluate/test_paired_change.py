"""The quickstart's tuned-vs-base line: a paired bootstrap on the questions both evals answered."""

from opentao.bench.stats import paired_bootstrap as bench_paired_bootstrap
from opentao.evaluate.significance import paired_bootstrap
from opentao.pipeline import fmt_change


def ev(ids, correct):
    return {"per_example": {"ids": list(ids), "correct": list(correct)}}


def test_bench_stats_reexports_the_one_bootstrap():
    assert bench_paired_bootstrap is paired_bootstrap


def test_clear_gain_is_called_a_gain():
    ids = [f"q{i}" for i in range(100)]
    base = ev(ids, [i < 5 for i in range(100)])
    tuned = ev(ids, [i < 25 for i in range(100)])  # 20 gained, none lost
    line = fmt_change(base, tuned)
    assert line.startswith("change +20.0 points (20 questions gained, 0 lost;")
    assert line.endswith(": a gain)")


def test_equal_evals_are_no_significant_change_and_a_loss_is_a_loss():
    ids = [f"q{i}" for i in range(60)]
    same = ev(ids, [i % 3 == 0 for i in range(60)])
    assert fmt_change(same, same).endswith("95% CI +0.0 to +0.0: no significant change)")
    worse = ev(ids, [False] * 60)
    assert fmt_change(same, worse).endswith(": a loss)")
    swapped = ev(ids, [i % 3 == 1 for i in range(60)])  # 20 gained, 20 lost: a wide CI around zero
    assert "no significant change" in fmt_change(same, swapped)


def test_pairs_by_question_id_not_position():
    base = ev(["a", "b", "c"], [True, False, False])
    tuned = ev(["c", "b", "a", "z"], [False, False, True, True])  # same answers, other order, one extra
    assert fmt_change(base, tuned).startswith("change +0.0 points (0 questions gained, 0 lost;")
    assert "same 3 questions" in fmt_change(base, tuned)


def test_no_line_without_per_example_results_or_common_questions():
    assert fmt_change({}, ev(["a"], [True])) is None
    assert fmt_change(ev(["a"], [True]), ev(["b"], [True])) is None
