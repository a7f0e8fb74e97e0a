# Two commands do everything on a fresh machine:
#   make reproduce   set up, then build every stage of params/$(PROFILE).yaml (tiny) and render its reports
#                    into runs/$(PROFILE)/reports/ (untracked, like everything a run writes)
#   make test        set up, then lint (ruff) and run the test suite
#   make test-fast   set up, then lint and run the unit tests (under a minute): no pipeline, training or launch
#   make setup-cuda  as `make setup`, with the CUDA wheel of the same torch (GPU machines; docs/paper-run.md)
# and, on purpose only:
#   make example     remake the committed example report, reports/tiny/, from a fresh render, with its screenshots
#   make screenshots every page of $(REPORTS) in headless Chromium → $(REPORTS)/screenshots/
#   make smoke-paper  the paper profile's code path at the paper's shapes (random-weight whisper-large-v2), offline
#                     on the CPU: params/paper-smoke.yaml → runs/paper-smoke/, its wall time and peak memory
#   make lab         JupyterLab at the repository root (PORT=8888 by default)
#   make clean       remove what runs made (runs/, .cache/); never a tracked file
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= tiny
TORCH_VERSION := 2.13.0
# the CUDA build of torch for setup-cuda: PyTorch's wheel index for one CUDA version (override: TORCH_CUDA=cu126)
TORCH_CUDA ?= cu128
TORCH_CUDA_INDEX ?= https://download.pytorch.org/whl/$(TORCH_CUDA)
REPORTS ?= runs/$(PROFILE)/reports
PORT ?= 8888
EXAMPLE := reports/tiny
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Jupyter refuses to run as root without --allow-root
LAB_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
CHROMIUM_FLAGS := --headless --disable-gpu --hide-scrollbars --window-size=1280,2000 $(shell [ "$$(id -u)" = 0 ] && echo --no-sandbox)

.PHONY: setup setup-cuda reproduce test test-fast example smoke-paper lab screenshots clean

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

example: setup  # the committed example, remade on purpose: a clean render of the tiny profile copied to reports/tiny/
	rm -rf runs/tiny/reports
	$(VENV)/bin/kdlib run params/tiny.yaml
	rm -rf $(EXAMPLE).new && cp -R runs/tiny/reports $(EXAMPLE).new && rm -f $(EXAMPLE).new/*.ipynb
	rm -rf $(EXAMPLE) && mv $(EXAMPLE).new $(EXAMPLE)
	$(MAKE) screenshots REPORTS=$(EXAMPLE)

smoke-paper: setup  # about 5 min and 13 GiB here (docs: "A dry run of the paper profile"); not in CI
	$(PY) -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('whisper') is None)" || $(PY) -m pip install -q -e ".[smoke]"
	$(PY) benchmarks/peak_memory.py --out runs/paper-smoke/peak_memory.json -- $(PY) -m kdlib run params/paper-smoke.yaml
	@echo "measured: runs/paper-smoke/peak_memory.json (copy it to benchmarks/results/paper_smoke.json to record it)"

lab: setup  # JupyterLab with widgets at the repository root (params, notebooks, runs); notebooks/*.py open as notebooks
	$(PY) -m pip install -q -e ".[lab]"
	mkdir -p $(LAB_SETTINGS)
	cp jupyter/overrides.json $(LAB_SETTINGS)/overrides.json
	$(VENV)/bin/jupyter lab $(LAB_ROOT) --port=$(PORT) --ServerApp.root_dir="$(CURDIR)"

screenshots:  # what a reader sees; Chromium is installed from Debian if missing, as espeak-ng is
	@command -v chromium >/dev/null || { $(APT) install -y -q chromium || { $(APT) update -q && $(APT) install -y -q chromium; }; }
	mkdir -p $(REPORTS)/screenshots
	for page in $(REPORTS)/*.html; do \
		chromium $(CHROMIUM_FLAGS) --screenshot="$(CURDIR)/$(REPORTS)/screenshots/$$(basename $$page .html).png" \
			"file://$(CURDIR)/$$page" 2>/dev/null || exit 1; \
	done

clean:  # what runs made; tracked files (the example report, benchmark results) stay
	rm -rf runs .cache
