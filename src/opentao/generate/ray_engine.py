"""``generate.engine: ray-<engine>``: the generate and score stages as Ray Data jobs (Moritz et al. 2018, "Ray: A
Distributed Framework for Emerging AI Applications"; Ray Data's streaming ``map_batches`` over an actor pool).

What runs where:

* the **driver** (the ``tao`` process) plans the work with the local stage's own functions
  (:func:`~opentao.generate.stage.plan_generate`, :func:`~opentao.score.stage.plan_score`): only parts not yet
  on disk become rows of a Ray Dataset, one row per part. It writes every part with ``RunStore.write_part`` as
  results stream back, and the summaries at the end. Workers never touch the run directory, so a cluster needs
  no shared filesystem for the tables, and a killed job keeps every part written so far: a rerun (with Ray or
  without) does only the rest.
* ``ray.actors`` **actors** (each ``ray.num_cpus`` CPUs, ``ray.num_gpus`` GPUs) each build the engine once
  (:func:`~opentao.generate.engines.build_generator`, the engine name with ``ray-`` stripped, ``auto`` resolved
  on the worker) and run :func:`~opentao.generate.stage.generate_part` with
  :func:`~opentao.generate.stage.part_seed`, one part per call; for scoring each builds the scorers and fits
  them on *every* group of the round (shipped once with ``ray.put``), then runs
  :func:`~opentao.score.stage.score_part`. Same functions, same seeds: the tables equal the local path's row for
  row (on the same hardware and thread count: sampled text depends on both, see DEVELOPERS.md).

What workers need: opentao and its dependencies (a local instance inherits the driver's environment; on a
cluster install them on the nodes or set ``ray.runtime_env``, e.g. ``{pip: ["opentao[ray]"]}`` or
``{py_modules: ["/path/to/src/opentao"]}``), the model (``bundled`` is converted on each node; a hub id is
downloaded there; a folder, such as ``models/round-r`` of an earlier round, must exist at the same path, e.g.
on a shared filesystem) and a SQL scorer's database at the same path. Local paths are made absolute first.

``ray.address``: unset starts a local instance (``num_cpus`` = this machine's cores, no dashboard); ``auto``
joins the instance running on this node; ``ray://head:10001`` connects to a cluster's Ray Client server. Ray is
initialised once per process.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opentao.config import GenerateConfig, RayConfig, ScoreConfig
from opentao.errors import TaoError
from opentao.generate.engines import build_generator, local_engine
from opentao.generate.stage import generate_part, generate_progress, part_key, part_seed, plan_generate, \
    write_candidates
from opentao.records import Candidate, Prompt, Score
from opentao.store import RunStore

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'opentao[ray]'"


def ensure_ray(ray_cfg: RayConfig):
    """The ``ray`` module, initialised once per process: a local instance, or ``ray_cfg.address``."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra: ray[data])
    except ImportError as exc:
        raise TaoError(f"the ray-* engines need Ray Data ({exc.name or 'ray'} is missing): {INSTALL_HINT}") from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": True, "logging_level": logging.WARNING,
                                  "runtime_env": ray_cfg.runtime_env or None}
        if not ray_cfg.address:  # a local instance: every core, no dashboard (nothing to serve it to)
            kwargs.update(num_cpus=os.cpu_count() or 1, include_dashboard=False)
        try:
            ray.init(address=ray_cfg.address or None, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = ray_cfg.address or "a local instance"
            raise TaoError(f"could not start Ray at {where}: {type(exc).__name__}: {exc}") from None
        res = ray.cluster_resources()
        log.info("ray: %s, %g CPUs, %g GPUs", ray_cfg.address or "a local instance", res.get("CPU", 0),
                 res.get("GPU", 0))
    ray.data.DataContext.get_current().enable_progress_bars = False  # the stage draws its own
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # not a line per Dataset started and finished
    return ray


def _worker_path(name: str | None) -> str | None:
    """A path that exists here, made absolute (a worker's working directory is not the driver's); other names
    (``bundled``, a hub id) unchanged."""
    from opentao.models import BUNDLED_ALIASES  # already imported: the stage's validation resolved the model

    if not name or name.lower() in BUNDLED_ALIASES:
        return name
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


_OUR_ERROR = re.compile(r"^opentao\.[\w.]+: (.+)$", re.M)


def _tao_error(exc: BaseException) -> str | None:
    """The message of the TaoError an actor raised: found in the exception chain Ray wraps it in, or, when an
    actor's ``__init__`` failed (Ray then keeps only the text of its traceback), the last ``opentao.…: message``
    line of that text."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, TaoError):
            return str(e)
        stack += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    found = _OUR_ERROR.findall(str(exc))
    return found[-1].strip() if found else None


def _results(ds) -> Iterator[dict]:
    """The output rows of ``ds`` as they finish (any order); an actor's TaoError comes out as one TaoError."""
    try:
        yield from ds.iter_rows()
    except Exception as exc:
        msg = _tao_error(exc)
        if msg is not None:
            raise TaoError(f"on Ray: {msg}") from None
        raise


def _map_parts(ray, items: list[dict], actor: type, ray_cfg: RayConfig, kwargs: dict):
    """One Dataset row per part (its own block, so parts spread over the actors), mapped one at a time."""
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    return ds.map_batches(actor, fn_constructor_kwargs=kwargs, batch_size=1,
                          compute=ray.data.ActorPoolStrategy(size=min(ray_cfg.actors, len(items))),
                          num_cpus=ray_cfg.num_cpus, num_gpus=ray_cfg.num_gpus)


def _column(values: list) -> Any:
    import numpy as np

    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


# --- generate ---------------------------------------------------------------------------------------------
class GenerateActor:
    """Holds one engine; each call turns parts (``idx``, ``prompts`` as JSON rows) into their candidates."""

    def __init__(self, cfg: GenerateConfig, slots: list, model_name: str, dtype: str, device: str, seed: int,
                 round_: int):
        self.cfg, self.slots, self.seed, self.round_ = cfg, slots, seed, round_
        self.generator = build_generator(cfg, model_name, dtype=dtype, device=device, seed=seed)

    def __call__(self, batch: dict) -> dict:
        idxs, rows = [], []
        for idx, prompts_json in zip(batch["idx"], batch["prompts"]):
            idx = int(idx)
            part = [Prompt.from_row(r) for r in json.loads(prompts_json)]
            cands = generate_part(self.generator, part, self.slots, self.cfg, round_=self.round_,
                                  seed=part_seed(self.seed, self.round_, idx))
            idxs.append(idx)
            rows.append(json.dumps([c.to_row() for c in cands]))
        return {"idx": _column(idxs), "rows": _column(rows)}


def ray_generate(store: RunStore, prompts: list[Prompt], cfg: GenerateConfig, model_name: str, *, round_: int,
                 seed: int, ray_cfg: RayConfig, dtype: str = "auto", device: str = "auto") -> dict:
    """:func:`~opentao.generate.stage.run_generate` on Ray actors: the same parts, seeds, tables and stats."""
    slots, todo, stats = plan_generate(store, prompts, cfg, round_)
    if not todo:
        return stats
    ray = ensure_ray(ray_cfg)
    sizes = {idx: len(part) for idx, part in todo}
    items = [{"idx": idx, "prompts": json.dumps([p.to_row() for p in part])} for idx, part in todo]
    actor_cfg = cfg.model_copy(update={"engine": local_engine(cfg.engine)})
    ds = _map_parts(ray, items, GenerateActor, ray_cfg,
                    {"cfg": actor_cfg, "slots": slots, "model_name": _worker_path(model_name), "dtype": dtype,
                     "device": device, "seed": seed, "round_": round_})
    with generate_progress(round_, todo) as advance:
        for row in _results(ds):
            idx = int(row["idx"])
            cands = [Candidate.from_row(r) for r in json.loads(row["rows"])]
            write_candidates(store, round_, idx, cands, sizes[idx], stats, advance)
    return stats


# --- score ------------------------------------------------------------------------------------------------
class ScoreActor:
    """Holds the scorers, fitted on every group of the round; each call scores parts (``idx``, prompt ids)."""

    def __init__(self, specs: list[dict], data: list, normalize: str, round_: int):
        import ray

        from opentao.score.stage import ready_scorers

        self.prompts, self.groups = ray.get(data[0])  # in a list, so Ray hands over the reference itself
        self.scorers, self.own_norm = ready_scorers(specs, self.prompts, self.groups)
        self.normalize, self.round_ = normalize, round_
        self.actor_id = ray.get_runtime_context().get_actor_id() or str(os.getpid())
        self.calls = 0

    def __call__(self, batch: dict) -> dict:
        from opentao.score.stage import score_part, scorer_counters

        idxs, rows, abstained, counters = [], [], [], []
        for idx, pids_json in zip(batch["idx"], batch["pids"]):
            self.calls += 1
            scores, abst = score_part(self.scorers, self.own_norm, self.prompts, self.groups, json.loads(pids_json),
                                      normalize=self.normalize, round_=self.round_)
            idxs.append(int(idx))
            rows.append(json.dumps([s.to_row() for s in scores]))
            abstained.append(json.dumps(dict(abst)))
            counters.append(json.dumps([self.calls, scorer_counters(self.scorers)]))  # this actor's, so far
        return {"idx": _column(idxs), "rows": _column(rows), "abstained": _column(abstained),
                "counters": _column(counters), "actor": _column([self.actor_id] * len(idxs))}


def merge_counters(per_actor: list[dict]) -> dict:
    """Scorer counters summed over actors (every counter is a count or a summed duration), nested dicts too."""
    def add(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            if isinstance(v, dict):
                out[k] = add(out.get(k, {}), v)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
            else:
                out.setdefault(k, v)
        return out

    total: dict = {}
    for counters in per_actor:
        total = add(total, counters)
    return total


def ray_score(store: RunStore, cfg: ScoreConfig, *, round_: int, ray_cfg: RayConfig, db: str | None = None,
              model: str | None = None) -> dict:
    """:func:`~opentao.score.stage.run_score` on Ray actors: the same parts, tables and summary."""
    from opentao.score.registry import build_scorers
    from opentao.score.stage import finish_score, plan_score, score_progress, scorer_counters

    job = plan_score(store, cfg, round_, db=db, model=model)
    if not job.todo:  # nothing to score: the counters of fresh scorers, as the local path reports
        return finish_score(store, round_, job.stats, scorer_counters(build_scorers(job.specs)))
    ray = ensure_ray(ray_cfg)
    specs = [{**s, **{k: _worker_path(s[k]) for k in ("db", "model") if isinstance(s.get(k), str)}}
             for s in job.specs]
    data = ray.put((job.prompts, job.groups))
    sizes = {idx: len(part) for idx, part in job.todo}
    items = [{"idx": idx, "pids": json.dumps(part)} for idx, part in job.todo]
    ds = _map_parts(ray, items, ScoreActor, ray_cfg,
                    {"specs": specs, "data": [data], "normalize": cfg.normalize, "round_": round_})
    latest: dict[str, tuple[int, dict]] = {}  # actor → its newest (calls, counters)
    with score_progress(round_, job.todo) as advance:
        for row in _results(ds):
            idx = int(row["idx"])
            scores = [Score.from_row(r) for r in json.loads(row["rows"])]
            abstained = Counter(json.loads(row["abstained"]))
            job.stats["abstained"].update(abstained)
            calls, counters = json.loads(row["counters"])
            latest[row["actor"]] = max(latest.get(row["actor"], (0, {})), (calls, counters), key=lambda t: t[0])
            store.write_part("scores", part_key(round_, idx), scores, Score.SCHEMA)
            advance(sizes[idx], abstentions=sum(v for k, v in abstained.items() if k != "combined"))
    return finish_score(store, round_, job.stats, merge_counters([c for _, c in latest.values()]))
