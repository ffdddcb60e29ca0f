# Every target does its own set-up on a fresh clone: .venv, torch (CPU wheel, exact pin), the package.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.ndgm-installed
TEST_STAMP := $(VENV)/.ndgm-test-installed
OUT ?= runs/reproduce

.PHONY: reproduce test bench clean venv

$(VPY):
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

# torch==2.13.0 is installed first and exactly, unless a torch is already importable,
# so that pip never resolves a bare `torch` to a CUDA build.
$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(VPY) -m pip install -q -e ".[test]"
	touch $@

venv: $(STAMP)

reproduce: $(STAMP)
	$(VENV)/bin/ndgm reproduce --quick --out $(OUT)

test: $(TEST_STAMP)
	$(VPY) -m pytest

# Every benchmark prints its ratios against the reference measured in the same run; run them on a
# quiet machine. bench_lasso and bench_lanczos compare with skglm / PyHessian (the bench extra).
bench: $(STAMP)
	$(VPY) -m pip install -q -e ".[bench]"
	$(VPY) benchmarks/bench_capture.py
	$(VPY) benchmarks/bench_seeds.py
	$(VPY) benchmarks/bench_lasso.py --only estimator --repeats 3
	$(VPY) benchmarks/bench_prox.py
	$(VPY) benchmarks/bench_spectra.py
	$(VPY) benchmarks/bench_lanczos.py

clean:
	rm -rf $(VENV) runs reports
