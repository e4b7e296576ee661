"""Stage 2 — Score: every scorer rates each prompt's whole group of candidates; no labels are read.

Writes one row per (candidate, scorer) plus a ``combined`` row holding the weighted reward used for training.
Work is written in parts of ``prompts_per_part`` groups, so a killed run resumes without re-scoring (or
re-calling an endpoint for) finished groups.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentao.config import ScoreConfig
from opentao.errors import TaoError
from opentao.generate.stage import chunks, part_key
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


@dataclass
class ScoreJob:
    """A round's scoring work: the specs (run-level ``db`` and round model filled in), the prompts, every group
    (candidates sorted by id, in prompt order), and the parts of ``prompts_per_part`` groups not yet on disk."""

    specs: list[dict[str, Any]]
    prompts: dict[str, Prompt]
    groups: dict[str, list[Candidate]]
    todo: list[tuple[int, list[str]]]
    stats: dict[str, Any]


def plan_score(store: RunStore, cfg: ScoreConfig, round_: int, *, db: str | None = None,
               model: str | None = None) -> ScoreJob:
    """What every score path does before scoring: read the round's groups and find the parts still to do."""
    if not cfg.scorers:
        raise TaoError("no scorers configured: add at least one under score.scorers")
    specs = with_round_model(with_default_db(cfg.scorers, db), model)
    prompts = {r["prompt_id"]: Prompt.from_row(r) for r in store.read("prompts", round_)}
    by_prompt: dict[str, list[Candidate]] = defaultdict(list)
    for row in store.read("candidates", round_):
        by_prompt[row["prompt_id"]].append(Candidate.from_row(row))
    if not by_prompt:
        raise TaoError(f"no candidates for round {round_} in {store.root}: run 'tao generate' first")
    groups = {pid: sorted(by_prompt[pid], key=lambda c: c.candidate_id) for pid in prompts if pid in by_prompt}
    parts = chunks(list(groups), cfg.prompts_per_part)
    todo = [(i, p) for i, p in enumerate(parts) if not store.has_part("scores", part_key(round_, i))]
    stats: dict[str, Any] = {"groups": len(groups), "parts_skipped": len(parts) - len(todo), "abstained": Counter()}
    return ScoreJob(specs, prompts, groups, todo, stats)


def ready_scorers(specs: list[dict[str, Any]], prompts: dict[str, Prompt], groups: dict[str, list[Candidate]]):
    """Build the scorers of ``specs`` and fit them on *every* group of the round (also on a resume, and in every
    Ray actor), so a part scores the same whichever process scores it. Returns ``(scorers, own_normalizations)``."""
    scorers = build_scorers(specs)
    own_norm = own_normalizations(specs, scorers)
    fit_scorers(scorers, [(prompts[pid], cands) for pid, cands in groups.items()])
    return scorers, own_norm


def score_part(scorers, own_norm: dict[str, str], prompts: dict[str, Prompt], groups: dict[str, list[Candidate]],
               part: list[str], *, normalize: str, round_: int,
               on_group: Callable[[int], None] | None = None) -> tuple[list[Score], Counter]:
    """The score rows of one part's groups (each scorer, then ``combined``) and its abstentions per scorer;
    ``on_group(n)`` is called after each group with the number of its non-combined abstentions."""
    rows: list[Score] = []
    abstained_by: Counter = Counter()
    for pid in part:
        cands = groups[pid]
        per_scorer, combined = score_group_all(scorers, prompts[pid], cands, normalize=normalize,
                                             per_scorer_normalize=own_norm)
        abstained = 0
        for name, values in [*per_scorer.items(), ("combined", combined)]:
            for cand, value in zip(cands, values):
                if value is None:
                    abstained_by[name] += 1
                    abstained += name != "combined"
                rows.append(Score(pid, cand.candidate_id, name, value, round_))
        if on_group is not None:
            on_group(abstained)
    return rows, abstained_by


def score_progress(round_: int, todo: list[tuple[int, list[str]]]):
    return progress_bar(f"score r{round_}", total=sum(len(p) for _, p in todo), unit="groups",
                        counts=("abstentions",))


def finish_score(store: RunStore, round_: int, stats: dict[str, Any], counters: dict[str, dict]) -> dict:
    """The stage's summary (abstentions, scorer counters, means, flat share), written as ``score-r<N>.json``."""
    stats["abstained"] = dict(stats["abstained"])
    stats["scorer_counters"] = counters
    stats.update(score_summary(store, round_))
    store.write_summary(f"score-r{round_}", stats)
    return stats


def run_score(store: RunStore, cfg: ScoreConfig, *, round_: int = 0, db: str | None = None,
              model: str | None = None) -> dict:
    """Score the round's groups; ``model`` is the round's policy, for the scorers of :data:`MODEL_SCORERS`."""
    job = plan_score(store, cfg, round_, db=db, model=model)
    scorers, own_norm = ready_scorers(job.specs, job.prompts, job.groups)
    with score_progress(round_, job.todo) as advance:
        for idx, part in job.todo:
            rows, abstained = score_part(scorers, own_norm, job.prompts, job.groups, part, normalize=cfg.normalize,
                                         round_=round_, on_group=lambda n: advance(1, abstentions=n))
            job.stats["abstained"].update(abstained)
            store.write_part("scores", part_key(round_, idx), rows, Score.SCHEMA)
    return finish_score(store, round_, job.stats, scorer_counters(scorers))


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
