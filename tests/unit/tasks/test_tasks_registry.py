"""The task registry: names and aliases, one grading path (tao eval, tao score --gold, the flywheel's labeled gate),
and a toy fourth task added as one folder in a temporary package."""

from __future__ import annotations

import json
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from opentao.errors import TaoError
from opentao.records import Candidate, Score
from opentao.store import RunStore
from opentao.tasks import TASKS, Task, get_task, register_task, unregister_task
from tests.helpers.files import write_jsonl


def test_registry_names_aliases_and_errors() -> None:
    assert list(TASKS) == ["sql", "docqa", "instruct", "sql-flights"]
    for name, task in TASKS.items():
        assert isinstance(task, Task) and task.name == name and task.config_path.is_file()
        assert task.gold_output in ("sql", "answer", "gold")
    assert get_task("sql").needs_db and not get_task("docqa").needs_db
    assert get_task("sql").cache_folder().name == "chinook-sql"  # existing caches keep their files
    for old in ("sql-chinook", "chinook-sql"):
        with pytest.warns(DeprecationWarning, match="use 'sql'"):
            assert get_task(old) is TASKS["sql"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_task("docqa")  # a current name warns nothing
    with pytest.raises(TaoError, match="unknown task 'poetry': available: sql, docqa, instruct, sql-flights"):
        get_task("poetry")
    with pytest.raises(TaoError, match="needs a database"):
        get_task("sql").grader()


def test_eval_task_is_validated_against_the_registry() -> None:
    from opentao.config import load_config

    assert load_config(None, ["eval.task=instruct"]).eval.task == "instruct"
    with pytest.raises(TaoError, match="eval.task: .*unknown task 'poetry'.*'sql', 'docqa', 'instruct', 'sql-flights'"):
        load_config(None, ["eval.task=poetry"])


def test_old_plugin_strings_resolve() -> None:
    from opentao.score.base import import_object
    from opentao.tasks.docqa.scorer import GroundedScorer
    from opentao.tasks.instruct.scorer import ConstraintScorer

    assert import_object("opentao.tasks.docqa:GroundedScorer") is GroundedScorer
    assert import_object("opentao.tasks.instruct:ConstraintScorer") is ConstraintScorer


# ------------------------------------------------------------------------------ one grading path

DOCQA_PROMPT = [{"role": "user", "content": "Read the passage and answer the question.\n\nPassage:\nThe sky is blue."
                                            "\n\nQuestion: Is the sky blue?\n\nAnswer with yes or no only."}]


def _docqa_run(tmp_path: Path, responses: list[str]) -> RunStore:
    from opentao.generate.strategies import normalize_answer

    store = RunStore(tmp_path / "run")
    cands = [Candidate("q0", f"q0#{i}", "plain", DOCQA_PROMPT, r, r, normalize_answer(r), 1)
             for i, r in enumerate(responses)]
    store.write_part("candidates", "r1-00000", cands, Candidate.SCHEMA)
    scores = [Score("q0", c.candidate_id, name, 1.0 if i == 0 else 0.0, 1)
              for i, c in enumerate(cands) for name in ("s", "combined")]
    store.write_part("scores", "r1-00000", scores, Score.SCHEMA)
    return store


def test_score_gold_grades_docqa_as_tao_eval_does(tmp_path: Path) -> None:
    """``tao score --gold`` on docqa grades with the docqa grader (yes/no prefix, SQuAD normalization), like tao
    eval; without a task, a bare 'answer' is still matched after normalization."""
    from opentao.score.integrity import run_integrity

    responses = ["Yes, it is.", "no", "maybe"]
    grader = get_task("docqa").grader()
    row = {"id": "q0", "kind": "yesno", "answer": "yes"}
    expected = [grader.grade(row, r)[0] for r in responses]
    assert expected == [True, False, False]
    gold = write_jsonl(tmp_path / "gold.jsonl", [{**row, "messages": DOCQA_PROMPT}])
    summary = run_integrity(_docqa_run(tmp_path, responses), str(gold), round_=1, db=None, task="docqa")
    assert summary["candidate_accuracy"] == pytest.approx(sum(expected) / 3)
    summary = run_integrity(_docqa_run(tmp_path / "b", responses), str(gold), round_=1, db=None)
    assert summary["candidate_accuracy"] == 0.0  # normalize_answer("Yes, it is.") != "yes": the task-free rule


def test_score_gold_accepts_instruct_gold_rows(tmp_path: Path) -> None:
    from opentao.score.integrity import load_gold

    row = {"id": "q0", "prompt": "x", "constraints": [{"type": "lowercase"}], "source": "nq", "reference": ["a"]}
    path = write_jsonl(tmp_path / "gold.jsonl", [row])
    with pytest.raises(TaoError, match="needs a 'sql' or an 'answer'"):
        load_gold(str(path), ["q0"])
    assert set(load_gold(str(path), ["q0"], get_task("instruct").gold_fields)) == {"q0"}


def test_labeled_gate_grades_through_the_task_grader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gate.kind exact with gate.task: each greedy answer is graded by the task's grader (tao eval's grading);
    without gate.task the task-free exact/contains match is kept."""
    from opentao.flywheel import gates as gate

    rows = [{"id": "a", "messages": DOCQA_PROMPT, "kind": "yesno", "answer": "yes"},
            {"id": "b", "messages": DOCQA_PROMPT, "kind": "span", "answer": "blue sky"}]
    data = write_jsonl(tmp_path / "dev.jsonl", rows)
    answers = {"current": ["No.", "the blue sky"], "candidate": ["Yes, it is.", "The Blue Sky!"]}
    monkeypatch.setattr(gate, "greedy_answers", lambda model, convs, **kw: answers[model])
    ev = gate.build_evaluator({"kind": "exact", "data": str(data), "task": "docqa"}, [])
    grader = get_task("docqa").grader()
    for model in answers:
        assert ev.hits(model) == [grader.grade(r, a)[0] for r, a in zip(rows, answers[model])]
    scores = ev.compare("current", "candidate")
    assert (scores.current, scores.candidate) == (0.5, 1.0)
    plain = gate.build_evaluator({"kind": "exact", "data": str(data)}, [])
    assert plain.hits("candidate") == [False, False]
    with pytest.raises(TaoError, match="a docqa dev set needs rows"):
        gate.build_evaluator({"kind": "exact", "data": str(write_jsonl(tmp_path / "x.jsonl", [{"prompt": "p",
                                                                                             "answer": "yes"}])),
                              "task": "docqa"}, [])


# ------------------------------------------------------------------------------ a fourth task, one folder

TOY_INIT = '''
"""A toy task: repeat the word in the prompt."""

from opentao.tasks.toy.scorer import EchoScorer
from opentao.tasks.toy.task import TASK

__all__ = ["TASK", "EchoScorer"]
'''
TOY_SCORER = '''
"""Label-free reward: the response contains the prompt's word."""


class EchoScorer:
    def __init__(self, name: str = "echo") -> None:
        self.name = name

    def score_group(self, prompt, candidates):
        word = prompt.messages[-1]["content"].split()[-1]
        return [float(word in c.response) for c in candidates]
'''
TOY_TASK = '''
"""The toy task's data, gold grade and registry entry."""

import json
from pathlib import Path

from opentao.tasks.base import RowGrader, Task

WORDS = ["apple", "river", "stone", "cloud"]


def build(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"t{i}", "messages": [{"role": "user", "content": f"Repeat: {w}"}], "word": w}
            for i, w in enumerate(WORDS)]
    write = lambda name, rs: (out / name).write_text("".join(json.dumps(r) + "\\n" for r in rs))
    write("train.jsonl", [{"id": r["id"], "messages": r["messages"]} for r in rows[:2]])
    write("train_gold.jsonl", [{**r, "gold": r["word"]} for r in rows[:2]])
    write("test.jsonl", rows[2:])
    return {"dir": str(out)}


def grade(row, prediction):
    ok = row["word"] in prediction.lower()
    return ok, "" if ok else "word missing"


TASK = Task(name="toy", gold_fields=("word",), gold_output="gold", needs_db=False,
            config_path=Path(__file__).with_name("config.yaml"), build=build,
            make_grader=lambda _db=None: RowGrader("toy", ("word",), grade), title="toy echo")
'''
TOY_CONFIG = '''
generate:
  strategies: [plain]
  temperatures: [0.7]
  max_new_tokens: 8
score:
  scorers:
    - {type: "opentao.tasks.toy:EchoScorer"}
train:
  threshold: 1.0
eval:
  task: toy
  max_new_tokens: 4
'''


@pytest.fixture()
def toy_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``opentao/tasks/toy/`` in a temporary copy of the namespace path: one folder, registered by the registry's
    own folder discovery (the same code that registers sql, docqa and instruct)."""
    import opentao.tasks as tasks_pkg

    folder = tmp_path / "pkg" / "toy"
    folder.mkdir(parents=True)
    for name, text in {"__init__.py": TOY_INIT, "scorer.py": TOY_SCORER, "task.py": TOY_TASK,
                       "config.yaml": TOY_CONFIG}.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    monkeypatch.setattr(tasks_pkg, "__path__", [*tasks_pkg.__path__, str(folder.parent)])
    monkeypatch.setenv("OPENTAO_CACHE", str(tmp_path / "cache"))
    tasks_pkg._register_folders()
    yield get_task("toy")
    unregister_task("toy")
    for mod in [m for m in sys.modules if m.startswith("opentao.tasks.toy")]:
        del sys.modules[mod]


def test_toy_task_is_one_folder(toy_task: Task, tmp_path: Path, tiny_model_dir: Path) -> None:
    from typer.testing import CliRunner

    from opentao.cli import app
    from opentao.score.registry import build_scorers

    assert list(TASKS)[-1] == "toy" and toy_task.title == "toy echo"
    folder = toy_task.prepare()
    assert folder == tmp_path / "cache" / "tasks" / "toy" and (folder / "test.jsonl").is_file()
    cfg = toy_task.config(run_dir=str(tmp_path / "run"))  # eval.task 'toy' validates against the registry
    assert cfg.eval.task == "toy" and cfg.prompts == str(folder / "train.jsonl") and cfg.db is None
    [(scorer, _w)] = build_scorers(cfg.score.scorers)
    assert type(scorer).__name__ == "EchoScorer"
    grader = toy_task.grader()
    assert grader.grade({"word": "stone"}, "Stone!") == (True, "")
    res = CliRunner().invoke(app, ["eval", "--task", "toy", "--model", str(tiny_model_dir),
                                   "--run-dir", str(tmp_path / "evalrun")])
    assert res.exit_code == 0, res.output
    assert "toy accuracy" in res.output
    rows = RunStore(tmp_path / "evalrun").read("eval_results")
    assert len(rows) == 2 and all(r["correct"] == grader.grade({"word": w}, r["prediction"])[0]
                                  for r, w in zip(rows, ["stone", "cloud"]))


def test_register_task_refuses_a_duplicate() -> None:
    with pytest.raises(TaoError, match="already registered"):
        register_task(TASKS["sql"])
    assert json.dumps(list(TASKS)) == '["sql", "docqa", "instruct", "sql-flights"]'
