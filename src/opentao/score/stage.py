"""Stage 2 — Score: every scorer rates each prompt's whole group of candidates; no labels are read.

Writes one row per (candidate, scorer) plus a ``combined`` row holding the weighted reward used for training.
Work is written in parts of ``prompts_per_part`` groups, so a killed run resumes without re-scoring (or
re-calling an endpoint for) finished groups.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from opentao.config import ScoreConfig
from opentao.errors import TaoError
from opentao.generate.stage import chunks
from opentao.progress import progress_bar
from opentao.records import Candidate, Prompt, Score
from opentao.score.registry import build_scorers, fit_scorers, own_normalizations, score_group_all
from opentao.store import RunStore

SQL_SCORERS = {"sql_exec", "majority_vote", "soft_vote"}
MODEL_SCORERS = {"self_certainty", "entropy"}  # score under the round's policy model


def with_round_model(specs: list[dict[str, Any]], model: str | None) -> list[dict[str, Any]]:
    """Fill the round's policy model (the one that sampled it) into scorer specs that score under a model and
    name none; without a model they are left as they are (their constructor then says what is missing)."""
    return [{**spec, "model": model} if spec.get("type") in MODEL_SCORERS and not spec.get("model") and model
            else dict(spec) for spec in specs]


def with_default_db(specs: list[dict[str, Any]], db: str | None) -> list[dict[str, Any]]:
    """Fill the run-level ``db`` into SQL scorer specs that name none."""
    out = []
    for spec in specs:
        spec = dict(spec)
        needs_db = spec.get("type") == "sql_exec" or (
            spec.get("type") in ("majority_vote", "soft_vote") and spec.get("mode") == "sql_result"
        )
        if needs_db and not spec.get("db"):
            if not db:
                raise TaoError(f"scorer {spec.get('type')!r} needs a database: set 'db:' in the config")
            spec["db"] = db
        out.append(spec)
    return out


def run_score(store: RunStore, cfg: ScoreConfig, *, round_: int = 0, db: str | None = None,
              model: str | None = None) -> dict:
    """Score the round's groups; ``model`` is the round's policy, for the scorers of :data:`MODEL_SCORERS`."""
    if not cfg.scorers:
        raise TaoError("no scorers configured: add at least one under score.scorers")
    specs = with_round_model(with_default_db(cfg.scorers, db), model)
    scorers = build_scorers(specs)
    own_norm = own_normalizations(specs, scorers)
    prompts = {r["prompt_id"]: Prompt.from_row(r) for r in store.read("prompts", round_)}
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for row in store.read("candidates", round_):
        groups[row["prompt_id"]].append(Candidate.from_row(row))
    if not groups:
        raise TaoError(f"no candidates for round {round_} in {store.root}: run 'tao generate' first")
    order = [pid for pid in prompts if pid in groups]
    for pid in order:
        groups[pid].sort(key=lambda c: c.candidate_id)
    fit_scorers(scorers, [(prompts[pid], groups[pid]) for pid in order])  # every group, also on a resume
    parts = chunks(order, cfg.prompts_per_part)
    todo = [(i, p) for i, p in enumerate(parts) if not store.has_part("scores", f"r{round_}-{i:05d}")]
    stats: dict[str, Any] = {"groups": len(order), "parts_skipped": len(parts) - len(todo), "abstained": Counter()}
    with progress_bar(f"score r{round_}", total=sum(len(p) for _, p in todo), unit="groups",
                      counts=("abstentions",)) as advance:
        for idx, part in todo:
            rows: list[Score] = []
            for pid in part:
                cands = groups[pid]
                per_scorer, combined = score_group_all(scorers, prompts[pid], cands, normalize=cfg.normalize,
                                                     per_scorer_normalize=own_norm)
                abstained = 0
                for name, values in [*per_scorer.items(), ("combined", combined)]:
                    for cand, value in zip(cands, values):
                        if value is None:
                            stats["abstained"][name] += 1
                            abstained += name != "combined"
                        rows.append(Score(pid, cand.candidate_id, name, value, round_))
                advance(1, abstentions=abstained)
            store.write_part("scores", f"r{round_}-{idx:05d}", rows, Score.SCHEMA)
    stats["abstained"] = dict(stats["abstained"])
    stats["scorer_counters"] = scorer_counters(scorers)
    stats.update(score_summary(store, round_))
    store.write_summary(f"score-r{round_}", stats)
    return stats


def scorer_counters(scorers_with_weights) -> dict[str, dict]:
    """Counters of the scorers that keep any (judges: endpoint requests, retries, errors, tokens, unparsable
    replies, flagged injections), for this invocation of the stage."""
    out = {}
    for scorer, _ in scorers_with_weights:
        counters = getattr(scorer, "counters", None)
        if callable(counters):
            out[scorer.name] = counters()
    return out


def score_summary(store: RunStore, round_: int) -> dict:
    """Mean score per scorer and the share of groups whose combined reward has zero variance."""
    if not store.parts("scores"):
        return {}
    means = store.query(
        "SELECT scorer, avg(score) AS mean, count(score) AS n FROM scores WHERE round = ? GROUP BY scorer "
        "ORDER BY scorer",
        [round_],
    )
    flat = store.query(
        "SELECT avg(CASE WHEN coalesce(sd, 0) = 0 THEN 1.0 ELSE 0.0 END) AS flat FROM "
        "(SELECT prompt_id, stddev_pop(score) AS sd FROM scores WHERE round = ? AND scorer = 'combined' "
        "GROUP BY prompt_id)",
        [round_],
    )
    return {"mean_score": {m["scorer"]: m["mean"] for m in means}, "flat_share": flat[0]["flat"] if flat else None}
