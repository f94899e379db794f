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

# llama-cpp-python builds from source (~7 min on 2 cores). A default build targets the build
# machine's CPU (-march=native), and on CPUs with AMX (Sapphire Rapids) inside VMs that do not
# enable AMX it crashes at the first token. So it is built without AMX, for AVX-512 when the CPU
# has it (else AVX2), once, into a wheelhouse outside the repository that later installs reuse.
LLAMA_CPP := llama-cpp-python==$(shell sed -n 's/^llama-cpp-python==//p' requirements.txt)
CPU_LEVEL := $(shell grep -q avx512f /proc/cpuinfo 2>/dev/null && echo avx512 || echo avx2)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON
ifeq ($(CPU_LEVEL),avx512)
LLAMA_CMAKE_ARGS += -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON \
	-DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON
endif
WHEELHOUSE ?= $(HOME)/.cache/rag/wheels-$(CPU_LEVEL)
LLAMA_WHEEL := $(WHEELHOUSE)/.$(LLAMA_CPP)

$(LLAMA_WHEEL):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	mkdir -p $(WHEELHOUSE)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip wheel --no-deps --no-cache-dir \
		--wheel-dir $(WHEELHOUSE) "$(LLAMA_CPP)"
	touch $@

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml | $(LLAMA_WHEEL)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install --find-links $(WHEELHOUSE) -r requirements-dev.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

# Ingest data/ (incremental: only new or changed files are embedded, so an up-to-date index
# costs a second), then serve the app on http://$(HOST):$(PORT) until Ctrl-C.
HOST ?= 127.0.0.1
PORT ?= 8000
run: install
	$(PY) -m rag ingest data --index $(INDEX)
	$(PY) -m rag serve --index $(INDEX) --host $(HOST) --port $(PORT)

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
