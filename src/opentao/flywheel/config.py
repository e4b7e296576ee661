"""The flywheel's configs: ``FlywheelConfig`` (export, holdout, margin, the TAO round's settings) and its
``GateConfig``, read from YAML + ``--set`` overrides like a run's config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opentao.config import read_config_data, validate_config
from opentao.errors import TaoError

RESERVED_TAO_KEYS = {"run_dir", "model", "prompts", "rounds", "eval", "max_prompts"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateConfig(_Strict):
    kind: str = Field("judge", description="judge | reward | exact | sql | package.module:attr")
    data: str | None = Field(None, description="labeled dev set (exact / sql)")
    db: str | None = None
    match: str = "exact"
    task: str | None = Field(None, description="exact: grade the dev set with this task's grader (as tao eval)")
    judge_model: str | None = Field(None, description="judge model folder (default: bundled)")
    max_examples: int | None = Field(None, ge=1)
    max_new_tokens: int = Field(128, ge=1)
    stop: list[str] = Field(default_factory=list)
    confidence: float = Field(0.95, ge=0, lt=1, description="promote only if a one-sided paired sign test "
                              "says the candidate is better at this level (0: no test, margin only)")


class FlywheelConfig(_Strict):
    dir: str = "flywheel"
    min_prompts: int = Field(8, ge=1)
    max_prompts: int | None = Field(256, ge=1)
    sample: float = Field(1.0, gt=0, le=1, description="share of the new prompts to use")
    holdout: float = Field(0.2, ge=0, lt=1, description="share held out for the judge gate")
    margin: float = Field(0.05, ge=0, description="promote only if candidate - current >= margin")
    key_ids: list[str] = Field(default_factory=list, description="only traffic of these API key ids")
    filter: dict[str, str] = Field(default_factory=dict, description="request metadata that must match")
    seed: int = 0
    gate: GateConfig = Field(default_factory=GateConfig)
    tao: dict[str, Any] = Field(default_factory=dict, description="RunConfig fields: generate, score, train, ...")


def load_flywheel_config(path: str | Path | None = None, overrides: list[str] | None = None,
                         **direct: Any) -> FlywheelConfig:
    cfg = validate_config(FlywheelConfig, read_config_data(path, overrides, **direct), "flywheel config")
    bad = RESERVED_TAO_KEYS & set(cfg.tao)
    if bad:
        raise TaoError(f"flywheel config: tao.{sorted(bad)[0]} is set by the flywheel itself; remove it")
    return cfg


def parse_duration(text: str) -> float:
    """'90s', '30m', '6h', '1d' (or plain seconds) → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise TaoError(f"duration {text!r}: use a number with s, m, h or d, e.g. 30m")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
