"""Stage 1 — Generate: K candidates per prompt, written part by part (resumable)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from opentao.config import GenerateConfig
from opentao.generate.backend import GenRequest, Generator
from opentao.generate.engines import close_generator
from opentao.generate.strategies import extract, plan_slots, source_messages
from opentao.progress import progress_bar
from opentao.records import Candidate, Prompt
from opentao.store import RunStore

log = logging.getLogger(__name__)


def write_prompts(store: RunStore, prompts: list[Prompt], round_: int) -> None:
    """The prompts of a round are written once; a re-run with a different prompt set is refused."""
    key = f"r{round_}"
    if store.has_part("prompts", key):
        have = {r["prompt_id"] for r in store.read("prompts", round_)}
        want = {p.prompt_id for p in prompts}
        if have != want:
            from opentao.errors import TaoError

            raise TaoError(
                f"{store.root} already holds a different prompt set for round {round_} "
                f"({len(have)} prompts vs {len(want)} now): use a new run directory"
            )
        return
    store.write_part("prompts", key, prompts, Prompt.SCHEMA)


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def part_key(round_: int, idx: int) -> str:
    """The key of part ``idx`` of a round in the ``candidates`` and ``scores`` tables."""
    return f"r{round_}-{idx:05d}"


def plan_generate(store: RunStore, prompts: list[Prompt], cfg: GenerateConfig, round_: int
                  ) -> tuple[list, list[tuple[int, list[Prompt]]], dict]:
    """What every generate path does before sampling: write the round's prompts, plan the K slots, and find the
    parts not yet on disk. Returns ``(slots, todo, stats)``, ``todo`` as ``(part index, prompts)``."""
    write_prompts(store, prompts, round_)
    slots = plan_slots(cfg.k, cfg.strategies, cfg.temperatures, len(cfg.system_prompts))
    parts = chunks(prompts, cfg.prompts_per_part)
    todo = [(i, part) for i, part in enumerate(parts) if not store.has_part("candidates", part_key(round_, i))]
    stats = {"prompts": len(prompts), "parts": len(parts), "parts_skipped": len(parts) - len(todo), "candidates": 0}
    if not todo:
        log.info("generate: all %d parts already done", len(parts))
    return slots, todo, stats


def generate_progress(round_: int, todo: list[tuple[int, list[Prompt]]]):
    """The stage's progress bar (in a log: a line per part); advance it with :func:`write_candidates`."""
    return progress_bar(f"generate r{round_}", total=sum(len(part) for _, part in todo), unit="prompts",
                        rates=("candidates", "tokens"), every_s=0)


def write_candidates(store: RunStore, round_: int, idx: int, cands: list[Candidate], n_prompts: int, stats: dict,
                     advance) -> None:
    """Write one finished part (atomically) and count it in ``stats`` and the progress bar."""
    stats["candidates"] += store.write_part("candidates", part_key(round_, idx), cands, Candidate.SCHEMA)
    advance(n_prompts, candidates=len(cands), tokens=sum(c.num_tokens for c in cands))


def run_generate(
    store: RunStore,
    prompts: list[Prompt],
    cfg: GenerateConfig,
    make_generator: Callable[[], Generator],
    *,
    round_: int = 0,
    seed: int = 0,
) -> dict:
    """Sample ``cfg.k`` candidates for every prompt; skips parts already on disk. Returns stage stats."""
    slots, todo, stats = plan_generate(store, prompts, cfg, round_)
    if not todo:
        return stats
    generator = make_generator()
    try:
        with generate_progress(round_, todo) as advance:
            for idx, part in todo:
                cands = generate_part(generator, part, slots, cfg, round_=round_, seed=part_seed(seed, round_, idx))
                write_candidates(store, round_, idx, cands, len(part), stats, advance)
    finally:
        close_generator(generator)
    return stats


def part_seed(seed: int, round_: int, idx: int) -> int:
    """The sampling seed of part ``idx`` of a round: the same on a resume, whichever engine or process runs it."""
    return seed * 1_000_003 + round_ * 10_007 + idx


def generate_part(generator: Generator, part: list[Prompt], slots: list, cfg: GenerateConfig, *, round_: int,
                  seed: int) -> list[Candidate]:
    """The candidates of one part of prompts: one ``generate`` call of every (prompt, slot) request, in that
    order (a prompt's samples adjacent, so the backend can share their prefill)."""
    jobs = [(p, s, source_messages(p.messages, s, cfg.system_prompts)) for p in part for s in slots]
    requests = [GenRequest(src, s.temperature, cfg.max_new_tokens, seed, tuple(cfg.stop)) for _, s, src in jobs]
    outputs = generator.generate(requests)
    cands = []
    for (p, s, src), out in zip(jobs, outputs):
        response, answer = extract(out.text, s.strategy, cfg.extract)
        cands.append(Candidate(prompt_id=p.prompt_id, candidate_id=f"{p.prompt_id}#{s.index}", strategy=s.label,
                               source_messages=src, text=out.text, response=response, answer=answer, round=round_,
                               temperature=s.temperature, num_tokens=out.num_tokens))
    return cands

