"""``reward_model``: a trained reward model — any Hugging Face ``AutoModelForSequenceClassification`` folder —
scores each (prompt, response) pair (the Bradley–Terry reward models of RLHF: Ouyang et al. 2022; e.g.
Skywork-Reward, ArmoRM).

The pair is rendered with the reward model's own chat template when it has one, else as
``prompt\\n\\nresponse``. Scored in batches of ``batch_size`` (right padding; the model reads the last real
token), no labels. With one output label the score is the raw logit (Bradley–Terry reward); with several it is
the softmax probability of ``label`` (default: the last label, conventionally "good"/"positive"). Raw logits are
unbounded: combine them with ``score.normalize: zscore`` or ``rank`` when other scorers are on [0, 1].

A folder whose config declares no sequence-classification head (a causal LM, a base encoder) is refused with a
TaoError: ``from_pretrained`` would otherwise bolt a *randomly initialised* head onto it and score noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt

__all__ = ["RewardModelScorer"]


def check_head(path: str) -> dict:
    """The folder's config, after checking it declares a sequence-classification head; TaoError otherwise."""
    cfg_path = Path(path) / "config.json"
    if not cfg_path.is_file():
        raise TaoError(f"reward_model: {path} is not a model folder (no config.json)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaoError(f"reward_model: {cfg_path} is not valid JSON ({exc})") from None
    archs = cfg.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in archs):
        raise TaoError(
            f"reward_model: {path} has a {', '.join(archs) or 'undeclared'} head, not a sequence-classification "
            "head (architectures must name a *ForSequenceClassification class); loading it would score with a "
            "randomly initialised head"
        )
    return cfg


class RewardModelScorer:
    """Batched reward-model scoring (module docstring). Loaded once, on first use."""

    def __init__(self, path: str, batch_size: int = 8, max_length: int = 1024, label: int | str | None = None,
                 name: str = "reward_model", field: str = "response", dtype: str = "fp32",
                 device: str = "auto") -> None:
        from opentao.models import resolve_model

        if batch_size < 1 or max_length < 8:
            raise TaoError("reward_model: need batch_size >= 1 and max_length >= 8")
        if field not in ("response", "text", "answer"):
            raise TaoError(f"reward_model: unknown field {field!r}; use response, text or answer")
        self.path = resolve_model(path)
        cfg = check_head(self.path) if Path(self.path).is_dir() else {}
        self.num_labels = len(cfg.get("id2label") or {}) or int(cfg.get("num_labels", 1) or 1)
        self.label_index = self._label_index(label, cfg)
        self.batch_size, self.max_length, self.name, self.field = batch_size, max_length, name, field
        self.dtype, self.device = dtype, device
        self._model = self._tok = None

    def _label_index(self, label: int | str | None, cfg: dict) -> int:
        if label is None:
            return self.num_labels - 1
        if isinstance(label, int) and 0 <= label < self.num_labels:
            return label
        by_name = {str(v): int(k) for k, v in (cfg.get("id2label") or {}).items()}
        if isinstance(label, str) and label in by_name:
            return by_name[label]
        raise TaoError(f"reward_model: unknown label {label!r}; labels: {by_name or list(range(self.num_labels))}")

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForSequenceClassification

        from opentao.models import load_tokenizer, pick_device, pick_dtype

        dev = pick_device(self.device)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(self.path, dtype=pick_dtype(self.dtype, dev))
        except (OSError, ValueError) as exc:
            raise TaoError(f"reward_model: cannot load {self.path}: {exc}") from exc
        tok = load_tokenizer(self.path)
        tok.padding_side = "right"
        tok.truncation_side = "left"  # keep the end of a long pair: the response is what is scored
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tok.pad_token_id
        self._model, self._tok = model.to(dev).eval(), tok

    def render(self, prompt: Prompt, response: str) -> str:
        tok = self._tok
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([*prompt.messages, {"role": "assistant", "content": response}],
                                           tokenize=False)
        return "\n\n".join([*(m["content"] for m in prompt.messages), response])

    @torch.inference_mode()
    def score_texts(self, texts: list[str]) -> list[float]:
        """Rewards of already rendered texts, ``batch_size`` at a time."""
        self._load()
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self._tok(texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                            truncation=True, max_length=self.max_length, add_special_tokens=False)
            logits = self._model(**enc.to(self._model.device)).logits.float()  # (B, num_labels)
            if logits.shape[-1] == 1:
                values = logits[:, 0]
            else:
                values = logits.softmax(-1)[:, self.label_index]
            out.extend(values.tolist())
        return out

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        self._load()
        return list(self.score_texts([self.render(prompt, getattr(c, self.field) or "") for c in candidates]))

    def __repr__(self) -> str:
        return f"RewardModelScorer(path={self.path!r}, name={self.name!r})"
