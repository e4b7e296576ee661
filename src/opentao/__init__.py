"""opentao: Test-time Adaptive Optimization (TAO) — tune an LLM from unlabeled prompts only."""

__version__ = "0.1.0"
