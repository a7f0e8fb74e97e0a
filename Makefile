# Two commands do everything on a fresh machine:
#   make reproduce   set up, then build every stage of params/tiny.yaml and render reports/tiny/
#   make test        set up, then lint (ruff) and run the test suite
#   make test-fast   set up, then lint and run the unit tests (under a minute): no pipeline, training or launch
#   make screenshots every page of reports/$(PROFILE)/ in headless Chromium → reports/$(PROFILE)/screenshots/
#   make smoke-paper  the paper profile's code path at the paper's shapes (random-weight whisper-large-v2), offline
#                     on the CPU: params/paper-smoke.yaml → reports/paper-smoke/, its wall time and peak memory
#   make setup-cuda  as `make setup`, with the CUDA wheel of the same torch (GPU machines; docs/paper-run.md)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= tiny
TORCH_VERSION := 2.13.0
# the CUDA build of torch for setup-cuda: PyTorch's wheel index for one CUDA version (override: TORCH_CUDA=cu126)
TORCH_CUDA ?= cu128
TORCH_CUDA_INDEX ?= https://download.pytorch.org/whl/$(TORCH_CUDA)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Jupyter refuses to run as root without --allow-root
LAB_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
CHROMIUM_FLAGS := --headless --disable-gpu --hide-scrollbars --window-size=1280,2000 $(shell [ "$$(id -u)" = 0 ] && echo --no-sandbox)

.PHONY: setup setup-cuda reproduce test test-fast smoke-paper lab screenshots clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v espeak-ng >/dev/null || { $(APT) install -y -q espeak-ng || { $(APT) update -q && $(APT) install -y -q espeak-ng; }; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION)  # here: the CPU wheel on local disk; GPUs: make setup-cuda
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# The same environment with torch's CUDA wheel: a CPU build already in .venv is replaced (pip would otherwise keep
# it, as it satisfies torch==$(TORCH_VERSION)); kdlib and its pins are then installed around it. `make reproduce` and
# `make test` keep it (their stamp is written here too).
setup-cuda: $(VENV)/.installed-cuda

$(VENV)/.installed-cuda: pyproject.toml
	@command -v espeak-ng >/dev/null || { $(APT) install -y -q espeak-ng || { $(APT) update -q && $(APT) install -y -q espeak-ng; }; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import sys, torch; sys.exit(torch.version.cuda is None)" 2>/dev/null || { \
		$(PY) -m pip uninstall -q -y torch 2>/dev/null; \
		$(PY) -m pip install -q torch==$(TORCH_VERSION) --index-url $(TORCH_CUDA_INDEX); }
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '-', torch.cuda.device_count(), 'GPU(s) visible')"
	touch $@ $(VENV)/.installed

reproduce: setup
	$(VENV)/bin/kdlib run params/$(PROFILE).yaml

test: setup  # lint and format check first (seconds), then the suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

test-fast: setup  # tests/conftest.py marks `pipeline` the tests that build the ci run, train or start processes
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -m "not slow and not pipeline"

smoke-paper: setup  # about 9 min and 13 GiB here (README: "A dry run of the paper profile"); not in CI
	$(PY) -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('whisper') is None)" || $(PY) -m pip install -q -e ".[smoke]"
	$(PY) benchmarks/peak_memory.py --out benchmarks/results/paper_smoke.json -- $(PY) -m kdlib run params/paper-smoke.yaml

lab: setup  # JupyterLab with widgets; notebooks/*.py open as notebooks (jupyter/overrides.json: jupytext's viewer)
	$(PY) -m pip install -q -e ".[lab]"
	mkdir -p $(LAB_SETTINGS)
	cp jupyter/overrides.json $(LAB_SETTINGS)/overrides.json
	$(VENV)/bin/jupyter lab $(LAB_ROOT) notebooks/

screenshots:  # what a reader sees; Chromium is installed from Debian if missing, as espeak-ng is
	@command -v chromium >/dev/null || { $(APT) install -y -q chromium || { $(APT) update -q && $(APT) install -y -q chromium; }; }
	mkdir -p reports/$(PROFILE)/screenshots
	for page in reports/$(PROFILE)/*.html; do \
		chromium $(CHROMIUM_FLAGS) --screenshot="$(CURDIR)/reports/$(PROFILE)/screenshots/$$(basename $$page .html).png" \
			"file://$(CURDIR)/$$page" 2>/dev/null || exit 1; \
	done

clean:
	rm -rf runs reports/*/ .cache
