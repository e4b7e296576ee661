"""Run an ASGI app on a free loopback port in a background thread — for tests and scripts.

    from opentao.serve.app import create_app
    from opentao.serve.testing import serve_in_thread

    with serve_in_thread(create_app(my_generator)) as base_url:     # "http://127.0.0.1:PORT"
        client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused")

The socket is bound before the server starts (no port race), the context waits until uvicorn reports
it is started (lifespan done, model loaded), and on exit the server shuts down gracefully (in-flight requests
finish, the inference log is flushed and compacted).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


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


def tiny_random_llama(out_dir, *, seed: int = 0, init_scale: float | None = None):
    """A 2-layer random Llama (~1.6M parameters) with the bundled SmolLM2 tokenizer, saved as an HF folder.

    For load tests, demos and CI: it loads in well under a second and generates hundreds of tokens per second
    on a CPU core. Its text is gibberish; ``init_scale`` (e.g. 0.2) makes greedy answers vary between seeds.
    """
    from pathlib import Path

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
    )
    if init_scale is not None:
        cfg.initializer_range = init_scale
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
