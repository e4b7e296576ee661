"""What every ``tao`` verb module shares: the Typer app, the console, the common options and logging set-up.

The verb modules (:mod:`opentao.cli.run`, :mod:`opentao.cli.serve`, :mod:`opentao.cli.inspect`) import this
module and never each other; each has a ``register(app)`` that :mod:`opentao.cli` calls explicitly, so no verb
is registered as a side effect of an import and the command has no import cycle.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="TAO: tune an LLM from unlabeled prompts (generate → score → train → eval).")
out = Console()

ForceOpt = Annotated[bool, typer.Option("--force", help="train even if a scorer failed its integrity check "
                                                           "against gold (tao score --gold)")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override, e.g. generate.k=8")]
RunDirOpt = Annotated[Optional[str], typer.Option("--run-dir", "-o", help="run directory")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="'bundled', a model folder or a hub id")]
PromptsOpt = Annotated[Optional[str], typer.Option("--prompts", "-p", help="JSONL/CSV/Parquet of prompts")]
RoundOpt = Annotated[int, typer.Option("--round", "-r", help="round number (1 = from the base model)")]
EngineOpt = Annotated[Optional[str], typer.Option(
    "--engine", help="generate.engine: auto | hf | vllm | openai, or ray-<one of them> to run the generate and "
                     "score stages on Ray (same as --set generate.engine=NAME)")]


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=Console(stderr=True), show_path=False)], force=True)
    for noisy in ("httpx", "datasets", "transformers", "accelerate", "sqlglot"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.getLogger("opentao").setLevel(logging.INFO)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
