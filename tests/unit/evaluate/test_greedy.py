"""opentao.generate.greedy: one greedy loop, batched as the eval loop and the gate's answers were."""

from __future__ import annotations

from opentao.flywheel.gates import greedy_answers as gate_greedy_answers
from opentao.generate.greedy import greedy_answers
from opentao.generate.hf import GenOutput, GenRequest, HFGenerator
from opentao.models import load_model

CONVS = [[{"role": "user", "content": f"Question {i}: what comes next?"}] for i in range(7)]


class Recorder:
    """A Generator that records each generate() call's requests and echoes the last user turn."""

    def __init__(self) -> None:
        self.calls: list[list[GenRequest]] = []

    def generate(self, requests: list[GenRequest]) -> list[GenOutput]:
        self.calls.append(list(requests))
        return [GenOutput(r.messages[-1]["content"], len(r.messages[-1]["content"])) for r in requests]


def test_batches_are_consecutive_and_in_order() -> None:
    rec = Recorder()
    outs = greedy_answers(rec, CONVS, max_new_tokens=5, stop=(";",), batch_size=3, progress="eval x")
    assert [o.text for o in outs] == [c[-1]["content"] for c in CONVS]
    assert [[r.messages for r in call] for call in rec.calls] == [CONVS[0:3], CONVS[3:6], CONVS[6:7]]
    assert all(r.temperature == 0.0 and r.max_new_tokens == 5 and r.stop == (";",) and r.seed == 0
               for call in rec.calls for r in call)
    assert greedy_answers(Recorder(), [], max_new_tokens=5) == []


def test_same_outputs_as_the_replaced_loops(tiny_model_dir) -> None:
    model, tok = load_model(str(tiny_model_dir))
    # the gate's old body: one generate() call over everything, the generator batching by 16
    gen16 = HFGenerator(model, tok, batch_size=16)
    old_gate = [o.text for o in gen16.generate([GenRequest(c, 0.0, 6) for c in CONVS])]
    # evaluate_task's old loop: batches of batch_size, one generate() call each
    gen3 = HFGenerator(model, tok, batch_size=3)
    reqs = [GenRequest(c, 0.0, 6, stop=("\n",)) for c in CONVS]
    old_eval = [o for s in range(0, len(reqs), 3) for o in gen3.generate(reqs[s : s + 3])]
    assert greedy_answers(gen3, CONVS, max_new_tokens=6, stop=("\n",), batch_size=3) == old_eval
    assert [o.text for o in greedy_answers(gen16, CONVS, max_new_tokens=6, batch_size=16)] == old_gate
    assert gate_greedy_answers(str(tiny_model_dir), CONVS, max_new_tokens=6) == old_gate
