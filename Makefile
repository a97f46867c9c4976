# Two commands set everything up on a fresh machine:
#   make demo   — install, then run the whole pipeline on the embedded default teacher (`distilkit quickstart`)
#   make test   — install, then lint and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned and installed first: an unpinned torch pulls gigabytes of CUDA packages.
TORCH := torch==2.13.0
EXTRAS := default-teacher,dev,onnx,serve,report,browser-test,datasets

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" $(TORCH)
	touch $@

demo: install
	$(VENV)/bin/distilkit quickstart --out runs/quickstart --overwrite

lint: install
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

test: lint
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/prepare_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
