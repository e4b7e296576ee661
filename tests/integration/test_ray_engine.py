"""``generate.engine: ray-hf`` on a local Ray instance: the generate and score stages as Ray Data jobs write the
same tables as the in-process engine (row for row, same seed), and resume part by part.

One Ray instance for the module (started the way the stages start it, shut down at the end); the tiny random
Llama; 6 prompts, K=3, 2 prompts per part (3 parts), two actors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opentao.config import RunConfig, load_config
from opentao.errors import TaoError
from opentao.pipeline import open_run, stage_generate, stage_score
from opentao.store import RunStore

pytestmark = pytest.mark.integration

SCORERS = "[{type: majority_vote}, {type: length_penalty, relative: 1.5}, {type: regex, pattern: 'a'}]"


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from opentao.config import RayConfig
    from opentao.generate.ray_engine import ensure_ray

    ensure_ray(RayConfig())
    yield ray
    ray.shutdown()


def _cfg(root: Path, model: Path, name: str, engine: str) -> RunConfig:
    prompts = root / "prompts.jsonl"
    if not prompts.is_file():
        prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Question number {i}?"}) + "\n"
                                   for i in range(6)))
    return load_config(None, [
        f"run_dir={root / name}", f"model={model}", f"prompts={prompts}", "seed=3", f"generate.engine={engine}",
        "generate.k=3", "generate.strategies=[plain, cot]", "generate.temperatures=[0.8, 1.2]",
        "generate.max_new_tokens=12", "generate.batch_size=8", "generate.prompts_per_part=2",
        "score.prompts_per_part=2", f"score.scorers={SCORERS}", "ray.actors=2"])


def _run(cfg: RunConfig) -> tuple[RunStore, dict, dict]:
    store = open_run(cfg, ("generate", "score"))
    return store, stage_generate(store, cfg, 1), stage_score(store, cfg, 1)


def _counts(stats: dict) -> dict:
    """A generate stage's stats less the engine it names (``hf`` here, ``ray-hf`` on Ray)."""
    return {k: v for k, v in stats.items() if k != "engine"}


def _table(store: RunStore, name: str) -> list[dict]:
    return sorted(store.read(name), key=lambda r: (r["candidate_id"], r.get("scorer", "")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, ray_instance):
    root = tmp_path_factory.mktemp("ray-runs")
    local = _run(_cfg(root, tiny_model_dir, "local", "hf"))
    on_ray = _run(_cfg(root, tiny_model_dir, "ray", "ray-hf"))
    return root, local, on_ray


def test_ray_tables_equal_the_local_engine(runs):
    _, (local, lg, ls), (ray_store, rg, rs) = runs
    assert (lg["engine"], rg["engine"]) == ("hf", "ray-hf")
    assert _counts(rg) == _counts(lg) == {"prompts": 6, "parts": 3, "parts_skipped": 0, "candidates": 18}
    cands = _table(ray_store, "candidates")
    assert len(cands) == 18 and cands == _table(local, "candidates")
    assert len({c["text"] for c in cands}) > 1  # sampled, not one repeated string
    scores = _table(ray_store, "scores")
    assert len(scores) == 18 * 4 and scores == _table(local, "scores")
    assert len({s["score"] for s in scores if s["scorer"] == "combined"}) > 1  # the scores tell candidates apart
    assert rs == ls  # abstentions, counters, means, flat share
    assert ray_store.read_summary("score-r1") == local.read_summary("score-r1")
    assert sorted(p.name for p in ray_store.parts("candidates")) == [f"part-r1-0000{i}.parquet" for i in range(3)]


def test_ray_resumes_only_the_missing_parts(runs, tiny_model_dir):
    root, (local, _, _), (ray_store, _, _) = runs
    gone_c, gone_s = ray_store.part_path("candidates", "r1-00001"), ray_store.part_path("scores", "r1-00002")
    kept = {p: p.stat().st_mtime_ns for p in [*ray_store.parts("candidates"), *ray_store.parts("scores")]
            if p not in (gone_c, gone_s)}
    gone_c.unlink()
    gone_s.unlink()
    store, g, s = _run(_cfg(root, tiny_model_dir, "ray", "ray-hf"))
    assert _counts(g) == {"prompts": 6, "parts": 3, "parts_skipped": 2, "candidates": 6}
    assert s["parts_skipped"] == 2
    assert gone_c.is_file() and gone_s.is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished parts are not rewritten
    assert _table(store, "candidates") == _table(local, "candidates")
    assert _table(store, "scores") == _table(local, "scores")
    # all done: nothing starts on Ray, and the summary is what the local path writes on such a rerun
    _, g2, s2 = _run(_cfg(root, tiny_model_dir, "ray", "ray-hf"))
    _, lg2, ls2 = _run(_cfg(root, tiny_model_dir, "local", "hf"))
    assert _counts(g2) == _counts(lg2) and g2["parts_skipped"] == 3
    assert s2 == ls2 and s2["parts_skipped"] == 3
    assert store.read_summary("score-r1") == local.read_summary("score-r1")


def test_an_actor_error_is_one_tao_error(runs, tiny_model_dir):
    root = runs[0]
    cfg = _cfg(root, tiny_model_dir, "openai-no-url", "ray-openai")
    with pytest.raises(TaoError, match="on Ray: .*generate.openai.base_url"):
        stage_generate(open_run(cfg, ("generate",)), cfg, 1)
