# Two commands on a fresh machine: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INDEX ?= index
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run ingest test lint check bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

# Ingest data/ (incremental: only new or changed files are embedded), then answer one question
# with the local LLM, streamed. The HTTP server arrives with the streaming-service issue.
QUESTION ?= Which team won Super Bowl 50?
run: install
	$(PY) -m rag ingest data --index $(INDEX)
	$(PY) -m rag ask "$(QUESTION)" --index $(INDEX)

lint: install
	$(PY) -m ruff check rag scripts tests
	$(PY) -m ruff format --check rag scripts tests
	$(PY) -m mypy

test: install lint
	$(PY) -m pytest

bench: install
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) $(INDEX) .mypy_cache .ruff_cache .pytest_cache
