# crampqa: `make ask Q="..."` sets everything up on first use and answers; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
Q ?= why do my calves cramp at night
EVAL_ARGS ?= --compare

.PHONY: setup ask index test lint eval clean train-scorer

setup: $(VENV)/.installed

# torch==2.13.0 first: on this machine pip's find-links holds the CPU wheel, so no CUDA
# packages are pulled in; the check below fails the set-up if any nvidia-* package slipped in.
$(VENV)/.installed: pyproject.toml
	@echo "setting up .venv: torch (CPU build), sentence-transformers, faiss, onnxruntime and crampqa; a few minutes on first use"
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev,web]"
	@if $(PY) -m pip list 2>/dev/null | grep -i '^nvidia-'; then \
		echo "error: CUDA packages were installed; install the CPU build of torch" >&2; exit 1; fi
	touch $@

ask: setup
	$(VENV)/bin/crampqa ask "$(Q)"

index: setup
	$(VENV)/bin/crampqa index

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

eval: setup
	$(VENV)/bin/crampqa eval eval/questions.jsonl $(EVAL_ARGS)

# retrains the answer scorer from scratch (MedQuAD from ../shared; about 70 min on 2 cores)
train-scorer: setup
	$(PY) training/train_scorer.py

clean:
	rm -rf $(VENV) indexes/default .pytest_cache .mypy_cache .ruff_cache
