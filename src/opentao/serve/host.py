"""Which model the gateway serves, and swapping it without dropping requests.

The serve directory holds a pointer file, ``current.json``::

    {"version": "round-2", "path": "/.../models/round-1", "time": ..., "reason": "promoted ...",
     "history": [{"version": "base", "path": "..."}, ...]}

``tao flywheel`` promotes a model by rewriting the pointer (atomically) and ``tao rollback`` pops the history.
``ModelHost`` polls the pointer's content; when it changes it loads the new model on its own thread while the
old one keeps serving, then replaces one reference. The batcher reads that reference once per batch, so a batch
in flight finishes on the old model and the next batch runs on the new one; the version that produced each
response is what gets logged. The old weights are freed once the last batch using them returns.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentao.errors import TaoError
from opentao.generate.backend import Generator
from opentao.records import Message
from opentao.serve.durable import durable_write_text

log = logging.getLogger(__name__)

POINTER = "current.json"


# --- pointer file ---------------------------------------------------------------------------------------
def read_pointer(serve_dir: str | Path) -> dict[str, Any] | None:
    path = Path(serve_dir) / POINTER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(data.get("version"), str) and isinstance(data.get("path"), str)
    except (ValueError, AssertionError, AttributeError):
        raise TaoError(f"{path}: not a model pointer (expected {{\"version\", \"path\"}})") from None
    data.setdefault("history", [])
    return data


def write_pointer(serve_dir: str | Path, version: str, path: str, reason: str) -> dict[str, Any]:
    """Point the server at a new model; the previous one goes onto the history stack (for rollback)."""
    old = read_pointer(serve_dir)
    history = []
    if old is not None:
        history = [*old["history"], {k: old[k] for k in ("version", "path", "time", "reason") if k in old}]
    data = {"version": version, "path": str(path), "time": time.time(), "reason": reason, "history": history}
    durable_write_text(Path(serve_dir) / POINTER, json.dumps(data, indent=2) + "\n")
    return data


def pop_pointer(serve_dir: str | Path, reason: str) -> dict[str, Any]:
    """Roll back: the previous model becomes current again. Returns the new pointer."""
    cur = read_pointer(serve_dir)
    if cur is None or not cur["history"]:
        raise TaoError(f"nothing to roll back to in {serve_dir}: no earlier model was served")
    prev = cur["history"][-1]
    data = {"version": prev["version"], "path": prev["path"], "time": time.time(), "reason": reason,
            "history": cur["history"][:-1]}
    durable_write_text(Path(serve_dir) / POINTER, json.dumps(data, indent=2) + "\n")
    return data


# --- a loaded model -------------------------------------------------------------------------------------
@dataclass
class Served:
    """A loaded model: the generator, and (for HF models) its tokenizer for token counts and context checks."""

    version: str
    generator: Generator
    path: str = ""
    tokenizer: Any = None
    max_context: int | None = None
    loaded_at: float = field(default_factory=time.time)

    def prompt_tokens(self, messages: list[Message]) -> int:
        if self.tokenizer is None:
            return sum(len(m["content"].split()) for m in messages)  # a stub backend: a rough word count
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def load_served(version: str, path: str, *, batch_size: int = 32, top_p: float = 0.95, dtype: str = "auto",
                device: str = "auto") -> Served:
    from opentao.generate.hf import HFGenerator
    from opentao.models import load_model, resolve_model

    model, tok = load_model(path, dtype=dtype, device=device)
    ctx = getattr(model.config, "max_position_embeddings", None)
    return Served(version, HFGenerator(model, tok, batch_size=batch_size, top_p=top_p), resolve_model(path), tok,
                  ctx)


class ModelHost:
    """Holds the current ``Served`` model; optionally follows a pointer file and hot-swaps on change."""

    def __init__(self, initial: Served, *, pointer_dir: str | Path | None = None,
                 loader: Callable[[str, str], Served] | None = None, poll_s: float = 2.0):
        self._current = initial
        self.pointer_dir = Path(pointer_dir) if pointer_dir else None
        self.loader = loader
        self.poll_s = poll_s
        self.swaps = 0
        self.swap_errors = 0
        self._seen = self._pointer_key()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._swap_lock = threading.Lock()

    @property
    def current(self) -> Served:
        return self._current

    def _pointer_key(self) -> tuple[str, str] | None:
        if self.pointer_dir is None:
            return None
        try:
            p = read_pointer(self.pointer_dir)
        except TaoError as exc:  # a half-edited pointer by hand: keep serving, say why
            log.warning("%s", exc)
            return self._seen
        return (p["version"], p["path"]) if p else None

    def check(self) -> bool:
        """Swap to the pointer's model if it changed. Returns True when a swap happened."""
        with self._swap_lock:
            key = self._pointer_key()
            if key is None or key == self._seen or self.loader is None:
                return False
            version, path = key
            log.info("loading model %s from %s (the current one keeps serving)", version, path)
            try:
                new = self.loader(version, path)
            except Exception as exc:  # a broken model folder must not take the server down
                self.swap_errors += 1
                self._seen = key  # do not retry in a loop; a new pointer write is needed
                log.error("cannot load %s from %s, still serving %s: %s", version, path, self._current.version, exc)
                return False
            self._current = new  # one reference assignment: the next batch uses the new model
            self._seen = key
            self.swaps += 1
            log.info("now serving model %s", version)
            return True

    def start_watching(self) -> None:
        if self.pointer_dir is None or self.loader is None or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.poll_s):
                self.check()

        self._thread = threading.Thread(target=loop, name="model-pointer-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
