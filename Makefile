# kaggle-digits: the habits of cookiecutter-data-science.
# `make install download cv submit` goes from nothing to a scored submission.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CLI := $(BIN)/kaggle-digits
PRESET ?= default
FOLDS ?=
BENCH_DATA ?= ../shared/datasets/digit-recognizer.zip
# test files run side by side (pytest-xdist), each file's tests in one process; two keep a
# 2-core machine's cores busy through the suite's waits (docs/measurements.md#ci-minutes)
TEST_WORKERS ?= 2
# the CPU build of PyTorch for the backend tests (the one this project's machines hold on
# disk); `make install TORCH=torch` takes whichever build pip finds for this machine
TORCH ?= torch==2.13.0

.PHONY: kaggle-clients browser screenshots install download info cv submit submissions test lint format bench holdout frontier priors workers steps photos gpu gpu-wheels install-backends test-backends clean

install: $(INSTALLED)  ## create .venv and install the package (editable) with dev tools, Ray, MLflow and the page's server

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,ray,mlflow,serve]'
	touch $(INSTALLED)

download: $(INSTALLED)  ## fetch the competition CSVs through the Kaggle API
	$(CLI) download

info: $(INSTALLED)  ## shapes, label counts, pixel statistics, a grid of sample digits
	$(CLI) info

cv: $(INSTALLED)  ## k-fold CNN ensemble: make cv PRESET=quick FOLDS=5
	$(CLI) cv --preset $(PRESET) $(if $(FOLDS),--folds $(FOLDS))

submit: $(INSTALLED)  ## submit the newest complete run and wait for its score
	$(CLI) submit

submissions: $(INSTALLED)  ## the submissions ledger with remote scores
	$(CLI) submissions

# Kaggle clients the tests run the toolkit under beside the installed one: the oldest that
# pyproject.toml declares, the 2.2.2 + kagglesdk 0.1.30 of users' reports, and kaggle 1.8
# (kagglesdk 0.1.15): each installed apart, put ahead of the venv's by tests/kaggle_cli.py
CLIENTS := $(VENV)/kaggle-clients
CLIENT_VERSIONS := 2.2.5:0.1.38 2.2.2:0.1.30 1.8.4:0.1.15

kaggle-clients: $(CLIENTS)/.installed  ## the older Kaggle clients the tests run the toolkit under

$(CLIENTS)/.installed: $(INSTALLED)
	for pair in $(CLIENT_VERSIONS); do k=$${pair%:*}; s=$${pair#*:}; \
	  $(BIN)/pip install --quiet --no-deps --target $(CLIENTS)/kaggle-$$k-kagglesdk-$$s \
	    kaggle==$$k kagglesdk==$$s || exit 1; done
	touch $@

test: $(VENV)/.backends $(CLIENTS)/.installed browser  ## the test suite on TensorFlow, JAX and PyTorch (small generated data, no network), TEST_WORKERS test files at a time
	KAGGLE_DIGITS_ALL_BACKENDS=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

browser:  ## Debian's chromium and chromedriver for the page's browser tests (as root; else they are skipped)
	@test -x /usr/bin/chromedriver || { [ "$$(id -u)" = 0 ] \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	  || echo "no chromium here: the page's browser tests will be skipped (apt-get install chromium chromium-driver)"

screenshots: $(INSTALLED) browser  ## docs/serve-*.png from your runs, and a drawing's answer time from one and two tabs
	$(BIN)/python benchmarks/screenshots.py --out docs

install-backends: $(VENV)/.backends  ## JAX and PyTorch (CPU build) into .venv: make test needs them

$(VENV)/.backends: $(INSTALLED)
	$(BIN)/pip install --quiet -e '.[jax,torch]' '$(TORCH)'
	touch $(VENV)/.backends

test-backends: $(VENV)/.backends  ## only the JAX and PyTorch tests (make test runs them too): probes, the end-to-end path under both
	KAGGLE_DIGITS_ALL_BACKENDS=1 $(BIN)/pytest -q tests/test_backends.py

lint: $(INSTALLED)  ## ruff check and format check
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(INSTALLED)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(INSTALLED)  ## load + cv timings on the full data: make bench PRESET=quick
	$(BIN)/python benchmarks/bench.py --data $(BENCH_DATA) --preset $(PRESET) $(if $(FOLDS),--folds $(FOLDS))

holdout: $(INSTALLED)  ## OOF vs accuracy on withheld labelled rows (a stand-in leaderboard)
	$(BIN)/python benchmarks/holdout.py --data $(BENCH_DATA) --preset $(PRESET) $(if $(FOLDS),--folds $(FOLDS))

# the quick preset unless PRESET is given: make priors PRESET=default takes two hours
PRIORS_PRESET = $(if $(filter command line,$(origin PRESET)),$(PRESET),quick)

priors: $(INSTALLED)  ## a clothing competition (Debian's dataset-fashion-mnist): the quick preset with its spec's priors, then with the digits'
	test -f data/fashion-mnist/train.csv || $(BIN)/python benchmarks/priors.py build
	$(BIN)/python benchmarks/priors.py run --preset $(PRIORS_PRESET) --priors spec --json reports/priors.jsonl
	$(BIN)/python benchmarks/priors.py run --preset $(PRIORS_PRESET) --priors digits --json reports/priors.jsonl

frontier: $(INSTALLED)  ## accuracy against minutes: budgets of 5, 10, 30, 60 min (BUDGETS=60: one) -> reports/frontier.png
	$(BIN)/python benchmarks/frontier.py --data $(BENCH_DATA) --preset $(PRESET) $(if $(FOLDS),--folds $(FOLDS)) $(if $(BUDGETS),--budgets $(BUDGETS))

workers: $(INSTALLED)  ## the same run sequential, as Ray tasks, and with no option, side by side
	$(BIN)/python benchmarks/workers.py --data $(BENCH_DATA) --preset $(if $(filter default,$(PRESET)),quick,$(PRESET)) $(if $(FOLDS),--folds $(FOLDS))

steps: $(INSTALLED)  ## ms a training step: oneDNN and Eigen kernels, float32 and mixed_bfloat16, side by side
	$(BIN)/python benchmarks/steps.py

photos: $(INSTALLED)  ## predict on photo-like digits (ruled paper, shadows, ...) per kind, before/now
	$(BIN)/python benchmarks/photos.py --data $(BENCH_DATA)

gpu:  ## on a machine with one NVIDIA GPU: backend tests, a short gpu-preset holdout, pairs per GPU -> reports/gpu/
	bash benchmarks/gpu.sh reports/gpu

gpu-wheels:  ## the wheels benchmarks/gpu.sh installs on a GPU machine without network -> .whl/
	bash benchmarks/gpu_wheels.sh .whl

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
