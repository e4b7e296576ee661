"""The flywheel verbs of ``tao``: ``serve``, ``keys``, ``flywheel``, ``rollback``, ``decisions``.

:func:`register` adds them to the app; heavy imports (FastAPI, uvicorn, torch) happen inside the commands, so
``tao --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from opentao.cli.app import ConfigOpt, SetOpt, _setup_logging, out
from opentao.errors import TaoError

DirOpt = Annotated[str, typer.Option("--dir", "-d", help="serve/flywheel directory (log, keys, models)")]

def serve(
    model: Annotated[str, typer.Option("--model", "-m", help="model served on first start ('bundled', a folder)")]
    = "bundled",
    dir_: DirOpt = "flywheel",
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1")] = 8000,
    host: Annotated[str, typer.Option(help="bind address (loopback by default)")] = "127.0.0.1",
    name: Annotated[str, typer.Option(help="model id clients pass")] = "tao",
    max_batch: Annotated[int, typer.Option(help="sequences per generate() call")] = 32,
    max_wait_ms: Annotated[float, typer.Option(help="batching window when idle")] = 5.0,
    max_tokens: Annotated[int, typer.Option(help="largest max_tokens a request may ask for")] = 1024,
    rpm: Annotated[int, typer.Option(help="default requests/minute per API key (0: unlimited)")] = 0,
    redact_pii: Annotated[bool, typer.Option(help="redact emails, phones, card numbers before logging")] = False,
    delta: Annotated[Optional[str], typer.Option(help="also append the inference table to this Delta table")] = None,
    reload_s: Annotated[float, typer.Option(help="how often to check current.json for a new model")] = 2.0,
    max_queue: Annotated[int, typer.Option(help="queued sequences before new requests get 503 + Retry-After")]
    = 256,
    shutdown_timeout: Annotated[float, typer.Option(help="seconds in-flight requests get on SIGTERM")] = 20.0,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="serve without API keys (every request anonymous)")]
    = False,
) -> None:
    """OpenAI-compatible gateway on the current model; logs every request to DIR's inference table.

    A key is required (`tao keys add ID --dir DIR`); with no keys every request gets 401, unless --no-auth."""
    from opentao.serve.app import ServeSettings, create_app
    from opentao.serve.run import serve_gateway

    if not 0 < port < 65536:
        raise TaoError(f"port {port} is out of range")
    if max_queue < 1 or shutdown_timeout < 0:
        raise TaoError("--max-queue must be at least 1 and --shutdown-timeout at least 0")
    settings = ServeSettings(served_name=name, max_batch=max_batch, max_wait_ms=max_wait_ms,
                             max_tokens_limit=max_tokens, rate_limit_rpm=rpm, redact_pii=redact_pii, delta_uri=delta,
                             reload_poll_s=reload_s, max_queue=max_queue, shutdown_timeout_s=shutdown_timeout,
                             auth=not no_auth)
    Path(dir_).mkdir(parents=True, exist_ok=True)
    web = create_app(model, serve_dir=dir_, settings=settings)
    gw = web.state.gateway
    gw.log.lock()  # another server on DIR: one error line now, before anything says "serving"
    if no_auth:
        auth = "OFF (--no-auth)"
    else:
        auth = "on" if gw.keys.has_keys else \
            "on, but NO KEYS: every request gets 401 until `tao keys add ID --dir DIR`"

    def banner() -> None:
        out.print(f"serving {gw.host.current.version} as '{name}' on http://{host}:{port}/v1 — auth {auth}; "
                  f"inference table in {dir_}", highlight=False, soft_wrap=True)

    try:
        serve_gateway(web, host=host, port=port, on_started=banner)
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it shut down on
        pass


def keys_add(key_id: Annotated[str, typer.Argument(help="a name for the key, logged with each request")],
             dir_: DirOpt = "flywheel",
             rpm: Annotated[Optional[int], typer.Option(help="requests/minute for this key")] = None) -> None:
    """Create an API key: printed once, only its hash is stored."""
    from opentao.serve.keys import add_key

    Path(dir_).mkdir(parents=True, exist_ok=True)
    print(add_key(dir_, key_id, rpm=rpm))


def keys_list(dir_: DirOpt = "flywheel") -> None:
    """Key ids (never the keys)."""
    from opentao.serve.keys import list_keys

    for k in list_keys(dir_):
        out.print(f"{k['id']}  created {time.strftime('%Y-%m-%d %H:%M', time.localtime(k['created']))}"
                  + (f"  rpm {k['rpm']}" if "rpm" in k else ""), highlight=False, soft_wrap=True)


def keys_revoke(key_id: Annotated[str, typer.Argument()], dir_: DirOpt = "flywheel") -> None:
    """Delete a key (a running server stops accepting it within a request)."""
    from opentao.serve.keys import revoke_key

    revoke_key(dir_, key_id)
    out.print(f"revoked {key_id}")


def flywheel(
    config: ConfigOpt = None, set_: SetOpt = None,
    dir_: Annotated[Optional[str], typer.Option("--dir", "-d", help="serve/flywheel directory")] = None,
    every: Annotated[Optional[str], typer.Option(help="repeat, e.g. 30m or 6h (default: one round)")] = None,
) -> None:
    """One round on traffic logged since the last: export → TAO round → gate → promote or not."""
    from opentao.flywheel import load_flywheel_config, parse_duration, run_round

    cfg = load_flywheel_config(config, set_, dir=dir_)
    if not (Path(cfg.dir) / "current.json").is_file():
        raise TaoError(f"no served model in {cfg.dir}: start 'tao serve --dir {cfg.dir}' once first")
    _setup_logging()
    pause = parse_duration(every) if every else None
    while True:
        run_round(cfg, report=lambda line: out.print(line, highlight=False, soft_wrap=True))
        if pause is None:
            return
        out.print(f"next round in {every}")
        time.sleep(pause)


def rollback(dir_: DirOpt = "flywheel",
             reason: Annotated[str, typer.Option(help="recorded with the decision")] = "manual rollback") -> None:
    """Serve the previous model again (the running server switches within seconds)."""
    from opentao.flywheel import format_decision
    from opentao.flywheel import rollback as do_rollback

    out.print(format_decision(do_rollback(dir_, reason)), highlight=False, soft_wrap=True)


def decisions(dir_: DirOpt = "flywheel") -> None:
    """The promotion decisions recorded in DIR (rounds and rollbacks), oldest first."""
    from opentao.flywheel import format_decision, read_decisions
    from opentao.serve.host import read_pointer

    if not Path(dir_).is_dir():
        raise TaoError(f"no flywheel directory at {dir_}")
    for d in read_decisions(dir_):
        out.print(format_decision(d), highlight=False, soft_wrap=True)
    pointer = read_pointer(dir_)
    out.print(f"serving now: {pointer['version'] if pointer else 'nothing yet'}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``flywheel``, ``rollback``, ``decisions`` and the ``keys`` group to ``app``."""
    app.command()(serve)
    app.command()(flywheel)
    app.command()(rollback)
    app.command()(decisions)
    keys_app = typer.Typer(no_args_is_help=True, help="API keys of `tao serve` (stored as SHA-256 hashes).")
    keys_app.command("add")(keys_add)
    keys_app.command("list")(keys_list)
    keys_app.command("revoke")(keys_revoke)
    app.add_typer(keys_app, name="keys")
