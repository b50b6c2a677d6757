# m2a-hf: the two commands of the README are `make demo` and `make test`; each installs what it needs first.
#
# Torch: a CPU build is installed into the project's .venv unless the venv already has a torch. GPU users
# create the venv and install their CUDA torch into it first (see README), and it is kept.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: install demo demo-clothing test test-fast lint format perf perf-quick accuracy accuracy-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,plot,demo]"
	@touch $(STAMP)

demo: install
	$(BIN)/m2a-hf demo $(ARGS)

demo-clothing: install
	$(BIN)/m2a-hf demo --dataset clothing $(ARGS)

# Tests in two tiers: `test` runs everything; `test-fast` skips the tests marked `slow` (subprocesses, Trainer runs,
# Hub round trips), about a minute on one core. pytest's exit status passes through: no test collected (5) fails too.
test: install
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

perf: install
	$(BIN)/python -m benchmarks.perf.run --output_dir outputs/perf $(ARGS)

perf-quick: install
	$(BIN)/python -m benchmarks.perf.run --output_dir outputs/perf-quick --quick $(ARGS)

accuracy: install
	$(BIN)/python -m benchmarks.accuracy.run --output_dir outputs/accuracy $(ARGS)

accuracy-quick: install
	$(BIN)/python -m benchmarks.accuracy.run --output_dir outputs/accuracy-quick --quick $(ARGS)

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache *.egg-info
