"""Typed run configuration: YAML in, ``key.path=value`` overrides from the CLI, resolved copy saved in the run dir.

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opentao.errors import TaoError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


ENGINES = ("auto", "hf", "vllm", "openai", "ray", "ray-auto", "ray-hf", "ray-vllm", "ray-openai")


class VllmConfig(_Strict):
    """``generate.engine: vllm`` (:mod:`opentao.generate.vllm`): what is passed to ``vllm.LLM``."""

    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="share of GPU memory (on a CPU build: of RAM) vLLM reserves for weights and "
                                      "KV cache; default 0.3 on CPU, 0.85 on GPU")
    max_model_len: int = Field(4096, ge=64, description="longest prompt + completion, in tokens")
    enforce_eager: bool | None = Field(None, description="skip torch.compile and graph capture; default: on a CPU "
                                                         "(start-up ~1 min shorter; decoding slower, so a large round may "
                                                         "prefer false), off on a GPU")
    enable_prefix_caching: bool = Field(True, description="prefill a shared prefix (a prompt's K samples) once")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="more keyword arguments for vllm.LLM")


class OpenAIEngineConfig(_Strict):
    """``generate.engine: openai``: candidates from an OpenAI-compatible endpoint (``tao serve``, vLLM, ...)."""

    base_url: str | None = Field(None, description="e.g. http://localhost:8000/v1")
    model: str | None = Field(None, description="the endpoint's model name (default: the first it lists)")
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1)


class GenerateConfig(_Strict):
    engine: str = Field("auto", description="auto | hf | vllm | openai; ray-<engine> runs it on Ray Data actors "
                                            "(auto: vllm when it is installed, else hf)")
    vllm: VllmConfig = Field(default_factory=VllmConfig)
    openai: OpenAIEngineConfig = Field(default_factory=OpenAIEngineConfig)
    k: int = Field(4, ge=1, le=256, description="candidates per prompt (the tuning-compute knob)")
    strategies: list[str] = Field(default_factory=lambda: ["plain"], description="plain | cot | system")
    temperatures: list[float] = Field(default_factory=lambda: [0.7, 1.0])
    system_prompts: list[str] = Field(
        default_factory=lambda: [
            "You are a precise expert. Answer exactly what is asked, concisely.",
            "You are a careful assistant. Double-check your answer before you give it.",
        ]
    )
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(128, ge=1)
    stop: list[str] = Field(default_factory=list, description="stop strings, e.g. [';'] for one SQL statement")
    batch_size: int = Field(32, ge=1, description="sequences per generate() call")
    prompts_per_part: int = Field(16, ge=1, description="prompts per resumable unit of work")
    extract: Literal["sql", "final_answer", "none"] = "none"

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str) -> str:
        if v not in ENGINES:
            raise ValueError(f"unknown engine {v!r}: use {', '.join(ENGINES)}")
        return v

    @field_validator("strategies")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in ("plain", "cot", "system")]
        if bad or not v:
            raise ValueError(f"unknown strategies {bad}: use plain, cot, system")
        return v


class ScoreConfig(_Strict):
    scorers: list[dict[str, Any]] = Field(default_factory=list)
    normalize: Literal["none", "zscore", "rank"] = "none"
    prompts_per_part: int = Field(32, ge=1)
    band: tuple[float, float] | None = Field(
        None, description="train only on prompts whose top answer's vote share is in [lo, hi] (SeRL: [0.2, 0.8])")

    @field_validator("band")
    @classmethod
    def _band(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not 0 <= v[0] <= v[1] <= 1:
            raise ValueError(f"band must be [lo, hi] with 0 <= lo <= hi <= 1, got {list(v)}")
        return v


class GrpoConfig(_Strict):
    """``train.method: grpo`` (see :mod:`opentao.train.grpo`); the defaults follow TRL's GRPOConfig except ``beta``."""

    scale_rewards: bool = Field(True, description="divide a group's advantages by its reward std (TRL 'group')")
    loss_type: Literal["dapo", "grpo"] = Field("dapo", description="token-level (dapo) or per-sequence mean (grpo)")
    epsilon: float = Field(0.2, gt=0, lt=1, description="PPO clip range: ratio kept in [1-eps, 1+eps_high]")
    epsilon_high: float | None = Field(None, gt=0, description="upper clip (DAPO clip-higher); default epsilon")
    beta: float = Field(0.04, ge=0, description="KL coefficient to the reference (LoRA off); DeepSeekMath 0.04")
    max_grad_norm: float = Field(1.0, gt=0)


class TrainConfig(_Strict):
    method: Literal["rft", "dpo", "grpo"] = "rft"
    threshold: float | None = Field(None, description="rft: min combined score to keep (default: group max > 0)")
    min_margin: float = Field(0.5, ge=0, description="dpo: min chosen-rejected score gap")
    max_per_prompt: int = Field(1, ge=1, description="rft: distinct top responses kept per prompt")
    balance_classes: bool = Field(False, description="rft: cap the kept examples' categorical answer shares "
                                                     "(yes/no) at the candidates' own shares + class_slack")
    class_slack: float = Field(0.1, ge=0, le=1)
    class_target: Literal["candidates", "uniform"] = Field(
        "candidates", description="balance_classes: cap each class at the candidates' own share (+ slack) or at "
                                  "1 / n_classes (+ slack), a label-free uniform prior")
    learning_rate: float = 2e-4
    epochs: float = 2.0
    max_steps: int = -1
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 768
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    beta: float = 0.1
    save_steps: int = 10
    seed: int = 0
    grpo: GrpoConfig = Field(default_factory=GrpoConfig)


class EvalConfig(_Strict):
    task: str = Field("sql", description="a registered task (opentao.tasks.TASKS)")
    data: str | None = None
    db: str | None = None
    max_examples: int | None = None
    batch_size: int = 32
    max_new_tokens: int = 128
    stop: list[str] = Field(default_factory=list)
    engine: Literal["hf", "vllm", "auto"] = Field("hf", description="greedy answers with hf or vllm (auto: vllm "
                                                                     "when installed); compare models under one")

    @field_validator("task")
    @classmethod
    def _registered(cls, v: str) -> str:
        from opentao.tasks.registry import TASKS

        if v not in TASKS:
            raise ValueError(f"unknown task {v!r}: use {', '.join(map(repr, TASKS))}")
        return v


class CollapseConfig(_Strict):
    """When a round's samples count as collapsed (:mod:`opentao.telemetry`, where the defaults are justified)."""

    max_top_share: float = Field(0.9, gt=0, le=1, description="flag when one answer is more than this share")
    min_entropy: float = Field(0.5, ge=0, description="flag when the answer entropy (bits) falls below this")


class SelectConfig(_Strict):
    best_round: bool = Field(False, description="keep the best round by its samples' mean reward (a probe round "
                                                "is generated and scored after the last), not the last round")


class RayConfig(_Strict):
    """Where ``ray-*`` engines run (:mod:`opentao.generate.ray_engine`): Ray Data jobs over the run tables."""

    address: str | None = Field(None, description="None: start a local Ray instance; 'auto': the running one; "
                                                  "'ray://head:10001': a cluster")
    actors: int = Field(1, ge=1, description="model-holding actors (one engine each)")
    num_cpus: float = Field(1, gt=0, description="CPUs reserved per actor")
    num_gpus: float = Field(0, ge=0, description="GPUs per actor (1 for a vLLM engine on a GPU node)")
    runtime_env: dict[str, Any] = Field(
        default_factory=dict, description="ray.init's runtime_env, for a cluster whose workers lack opentao: "
                                          "{pip: ['opentao[ray]']} or {py_modules: ['/path/to/src/opentao']}")


class RunConfig(_Strict):
    run_dir: str = "runs/tao"
    model: str = "bundled"
    prompts: str | None = None
    max_prompts: int | None = Field(None, ge=1, description="use only the first N prompts")
    db: str | None = Field(None, description="SQLite database for SQL scorers and eval (task-level default)")
    rounds: int = Field(1, ge=1)
    seed: int = 0
    dtype: str = "auto"
    device: str = "auto"
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    collapse: CollapseConfig = Field(default_factory=CollapseConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    ray: RayConfig = Field(default_factory=RayConfig)


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise TaoError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    out = []
    for item in items:
        if "=" not in item:
            raise TaoError(f"override {item!r} must look like key.path=value")
        key, _, raw = item.partition("=")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **direct: Any) -> RunConfig:
    """YAML file (optional) → apply ``key=value`` overrides → apply non-None keyword fields → validate."""
    return validate_config(RunConfig, read_config_data(path, overrides, **direct), "config")


def read_config_data(path: str | Path | None = None, overrides: list[str] | None = None,
                     **direct: Any) -> dict[str, Any]:
    """The merged, not yet validated mapping of a YAML file, its ``key=value`` overrides and keyword fields."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise TaoError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise TaoError(f"{p}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise TaoError(f"{p}: the config must be a YAML mapping")
    for key, value in parse_overrides(overrides or []):
        _set_path(data, key, value)
    for key, value in direct.items():
        if value is not None:
            _set_path(data, key, value)
    return data


def validate_config(model: type[BaseModel], data: dict[str, Any], what: str):
    """``model.model_validate(data)`` with the first problem as one ``TaoError`` line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise TaoError(f"{what}: {loc}: {err['msg']}") from None


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
