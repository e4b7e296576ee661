"""A TAO round end to end: generate → score → train → eval, each stage reading and writing the run directory.

Round r samples from the model of round r-1 (the base for r = 1), trains it into ``models/round-r``, and
evaluates it when an eval set is configured. Every stage skips finished work, so ``tao run`` is also
``tao resume``.
"""

from __future__ import annotations

import logging
import time

from opentao.config import RunConfig, dump_config
from opentao.errors import TaoError
from opentao.pipeline.format import fmt_acc, fmt_means
from opentao.pipeline.validation import round_prompts, validate
from opentao.store import RunStore, atomic_write_text, ensure_run_dir

log = logging.getLogger(__name__)


def open_run(cfg: RunConfig, stages: tuple[str, ...] = ()) -> RunStore:
    """Validate the inputs of ``stages``, then create (or reopen) the run directory and record the config."""
    validate(cfg, stages)
    store = RunStore(ensure_run_dir(cfg.run_dir))
    atomic_write_text(store.root / "config.yaml", dump_config(cfg))
    return store


def model_for_round(store: RunStore, cfg: RunConfig, round_: int) -> str:
    """The model that round ``round_`` samples from and trains: the previous round's output, else the base."""
    if round_ > 1:
        prev = store.model_dir(round_ - 1)
        if not (prev / "config.json").is_file():
            raise TaoError(f"round {round_} needs the model of round {round_ - 1} ({prev}), which is not trained yet")
        return str(prev)
    return cfg.model


def stage_generate(store: RunStore, cfg: RunConfig, round_: int, make_generator=None) -> dict:
    """Stage 1 on ``generate.engine``: in this process, or on Ray actors for a ``ray-*`` engine.
    ``make_generator`` (a :class:`~opentao.generate.engines.SharedEngine` from :func:`base_engine`) replaces the
    engine this stage would build, for a local engine."""
    from opentao.generate.engines import build_generator, local_engine, on_ray, split_engine
    from opentao.generate.stage import run_generate

    model_name = model_for_round(store, cfg, round_)
    if on_ray(cfg.generate.engine):
        from opentao.generate.ray_engine import ray_generate

        stats = ray_generate(store, round_prompts(cfg, round_), cfg.generate, model_name, round_=round_,
                             seed=cfg.seed, ray_cfg=cfg.ray, dtype=cfg.dtype, device=cfg.device)
        return {**stats, "engine": f"ray-{local_engine(cfg.generate.engine)}"}  # auto: the actors resolve it

    backend = split_engine(cfg.generate.engine)[1]

    def build():
        return build_generator(cfg.generate, model_name, dtype=cfg.dtype, device=cfg.device, seed=cfg.seed,
                               backend=backend)

    make_generator = make_generator or build
    stats = run_generate(store, round_prompts(cfg, round_), cfg.generate, make_generator, round_=round_,
                         seed=cfg.seed)
    return {**stats, "engine": backend}


def stage_score(store: RunStore, cfg: RunConfig, round_: int) -> dict:
    """Stage 2: in this process, or on Ray actors when ``generate.engine`` is a ``ray-*`` engine."""
    from opentao.generate.engines import on_ray
    from opentao.score.stage import MODEL_SCORERS, run_score

    needs_model = any(spec.get("type") in MODEL_SCORERS for spec in cfg.score.scorers)
    model = model_for_round(store, cfg, round_) if needs_model else None
    if on_ray(cfg.generate.engine):
        from opentao.generate.ray_engine import ray_score

        return ray_score(store, cfg.score, round_=round_, ray_cfg=cfg.ray, db=cfg.db, model=model)
    return run_score(store, cfg.score, round_=round_, db=cfg.db, model=model)


def stage_integrity(store: RunStore, cfg: RunConfig, round_: int, gold: str) -> dict:
    """Reward integrity of every scorer against gold labels (reported and stored; never used for training)."""
    from opentao.score.integrity import run_integrity

    types = {spec.get("name") or spec.get("type"): spec.get("type") for spec in cfg.score.scorers}
    return run_integrity(store, gold, round_=round_, db=cfg.db, scorer_types=types, task=cfg.eval.task)


def stage_train(store: RunStore, cfg: RunConfig, round_: int, *, force: bool = False) -> dict:
    from opentao.score.integrity import check_integrity
    from opentao.train.stage import run_train

    trained = (store.model_dir(round_) / "config.json").is_file() and store.read_summary(f"train-r{round_}")
    forced = [] if trained else check_integrity(store, round_, force=force)
    if forced:
        log.warning("training round %d although %s failed the integrity check (--force)", round_, ", ".join(forced))
    return run_train(store, cfg.train, model_for_round(store, cfg, round_), round_=round_, dtype=cfg.dtype,
                     device=cfg.device, band=cfg.score.band)


def base_engine(cfg: RunConfig):
    """One vLLM engine on the base model for both the base evaluation and round 1's sampling, when both run vLLM in
    this process and ``generate.vllm`` keeps its defaults (the engine the evaluation builds itself): a
    :class:`~opentao.generate.engines.SharedEngine`, else None. The base answers are greedy, so the engine's
    sampling seed and ``top_p`` do not touch them; the caller closes it after round 1's generate stage."""
    from opentao.config import VllmConfig
    from opentao.generate.engines import SharedEngine, build_generator, on_ray, split_engine

    if not cfg.eval.data or on_ray(cfg.generate.engine) or cfg.generate.vllm != VllmConfig():
        return None
    if split_engine(cfg.eval.engine)[1] != "vllm" or split_engine(cfg.generate.engine)[1] != "vllm":
        return None
    return SharedEngine(lambda: build_generator(cfg.generate, cfg.model, dtype=cfg.dtype, device=cfg.device,
                                                seed=cfg.seed, backend="vllm"))


def stage_eval(store: RunStore, cfg: RunConfig, model: str, label: str, round_: int,
               make_generator=None) -> dict | None:
    if not cfg.eval.data:
        return None
    from opentao.evaluate.base import evaluate_task
    from opentao.tasks import get_task

    evaluator = get_task(cfg.eval.task).grader(cfg.eval.db or cfg.db)
    return evaluate_task(model, cfg.eval.data, evaluator, label=label, max_examples=cfg.eval.max_examples,
                         batch_size=cfg.eval.batch_size, max_new_tokens=cfg.eval.max_new_tokens,
                         stop=tuple(cfg.eval.stop), store=store,
                         round_=round_, dtype=cfg.dtype, device=cfg.device, engine=cfg.eval.engine,
                         make_generator=make_generator)


def stage_telemetry(store: RunStore, cfg: RunConfig, round_: int) -> dict:
    """Collapse telemetry of the round's candidates (the samples of the model that sampled it), stored as
    ``summary/telemetry-r<N>.json``; a collapse is logged as a warning (:mod:`opentao.telemetry`)."""
    from opentao.records import Candidate
    from opentao.telemetry import is_collapsed, round_telemetry

    cands = [Candidate.from_row(r) for r in store.read("candidates", round_)]
    rewards = {r["candidate_id"]: r["score"] for r in store.read("scores", round_) if r["scorer"] == "combined"}
    tel = round_telemetry(cands, rewards)
    tel.update(round=round_, sampled_by=model_for_round(store, cfg, round_),
               collapse=is_collapsed(tel, cfg.collapse.max_top_share, cfg.collapse.min_entropy))
    if tel["collapse"]:
        log.warning("round %d: the samples of %s look collapsed (%s)", round_, tel["sampled_by"],
                    "; ".join(tel["collapse"]))
    store.write_summary(f"telemetry-r{round_}", tel)
    return tel


def keep_round(store: RunStore, cfg: RunConfig, results: dict, report) -> dict:
    """Which round's model the run keeps: the last, or with ``select.best_round`` the best by a label-free criterion
    (:func:`opentao.telemetry.choose_round`) after a probe round that measures the last model's samples."""
    from opentao.telemetry import choose_round

    rounds = results["rounds"]
    last = cfg.rounds
    if cfg.select.best_round:
        probe = last + 1
        g = _timed(stage_generate, store, cfg, probe)
        s = _timed(stage_score, store, cfg, probe)
        tel = stage_telemetry(store, cfg, probe)
        results["probe"] = {"round": probe, "generate": g, "score": s, "telemetry": tel}
        report(f"probe round {probe} (round {last}'s model, not trained): mean reward "
               f"{fmt_means({'combined': tel['mean_reward']})}")
    for entry in rounds:  # the model of round r is measured by the samples of round r + 1
        nxt = rounds[entry["round"]]["telemetry"] if entry["round"] < len(rounds) else results.get("probe", {}).get(
            "telemetry")
        entry["model_telemetry"] = nxt
    if not cfg.select.best_round:
        kept = {"round": last, "criterion": "the last round (select.best_round is off)", "why": "last round"}
    else:
        measured = {0: rounds[0]["telemetry"], **{e["round"]: e["model_telemetry"] for e in rounds}}
        kept = choose_round(measured)
    r = kept["round"]
    kept["model"] = None if r is None else str(store.model_dir(r)) if r > 0 else cfg.model
    report(f"kept: {'round ' + str(r) if r else 'the base model' if r == 0 else 'no model'} ({kept['why']})")
    return kept


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    res = fn(*args, **kwargs)
    if isinstance(res, dict):
        res = {**res, "wall_s": round(time.perf_counter() - t0, 1)}
    return res


def run_rounds(cfg: RunConfig, *, report=print, force: bool = False) -> dict:
    """All stages of ``cfg.rounds`` rounds, then a summary of base vs each round's model.

    Each stage's statistics carry ``wall_s``, the seconds this invocation spent in it (a stage that was already
    done costs ~0 s on a re-run), so ``summary/run.json`` says where the time went. ``force`` trains even on a
    scorer whose integrity check (with gold) failed. Every round records its collapse telemetry
    (``telemetry``: of its samples; ``model_telemetry``: of its trained model's samples, where measured), and
    ``kept`` says which round's model the run keeps and why (:func:`keep_round`).
    """
    t_start = time.perf_counter()
    store = open_run(cfg, ("generate", "score", "train", "eval"))
    results: dict = {"run_dir": str(store.root), "rounds": []}
    shared = base_engine(cfg)  # one engine start-up for the base eval and round 1's sampling
    try:
        base = _timed(stage_eval, store, cfg, cfg.model, "base", 0, make_generator=shared)
        if base:
            results["base"] = base
            report(f"base: {cfg.eval.task} accuracy {fmt_acc(base)}")
        g1 = _timed(stage_generate, store, cfg, 1, make_generator=shared)
    finally:
        if shared is not None:
            shared.close()  # before training: the engine's reserved memory goes back
    for r in range(1, cfg.rounds + 1):
        g = g1 if r == 1 else _timed(stage_generate, store, cfg, r)
        report(f"round {r} generate: {g['candidates']} new candidates for {g['prompts']} prompts "
               f"({g['parts_skipped']} parts already done)")
        s = _timed(stage_score, store, cfg, r)
        report(f"round {r} score: mean {fmt_means(s.get('mean_score', {}))}; groups with no signal "
               f"{(s.get('flat_share') or 0):.0%}")
        tel = stage_telemetry(store, cfg, r)
        if tel["collapse"]:
            report(f"round {r}: COLLAPSE in the samples of {tel['sampled_by']}: {'; '.join(tel['collapse'])}")
        t = _timed(stage_train, store, cfg, r, force=force)
        report(f"round {r} train: {t['examples']} examples, {t['steps']} steps, loss {t.get('first_loss')} → "
               f"{t.get('last_loss')}; {t['parameters']:,} parameters (base {t['base_parameters']:,})")
        e = _timed(stage_eval, store, cfg, str(store.model_dir(r)), f"round-{r}", r)
        if e:
            report(f"round {r}: {cfg.eval.task} accuracy {fmt_acc(e)}")
        results["rounds"].append({"round": r, "generate": g, "score": s, "telemetry": tel, "train": t, "eval": e})
    results["kept"] = keep_round(store, cfg, results, report)
    results["wall_s"] = round(time.perf_counter() - t_start, 1)
    results["tables"] = store.counts()
    store.write_summary("run", results)
    return results
