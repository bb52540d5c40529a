# make demo / make test work on a fresh machine with nothing but Python:
# create .venv, install the pinned CPU torch (override: make test TORCH_SPEC=torch==2.14.1),
# then the package with its dev extras, then run.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?= -n auto
# The other torch this project is tested on (from this machine's local wheels); see README.
COMPAT_TORCH ?= torch==2.14.1
COMPAT_VENV ?= .venv-compat
BIN := $(VENV)/bin
STAMP := $(VENV)/.cnnshape-installed
SOURCES := pytest_cnnshape tests benchmarks examples docs conftest.py README.md
# The examples of README.md and docs/ (Sybil, see conftest.py) and the notebook tour
# (nbmake). A page's examples share one namespace, so each page runs on one xdist worker.
DOC_EXAMPLES := README.md docs examples/notebooks
DOCTEST_ARGS := --dist loadfile --nbmake
# make test runs them first (make test-compat does not: see there).
TEST_DOCS ?= doctest
DOCS_STAMP := $(VENV)/.cnnshape-docs-installed

.PHONY: install demo test doctest docs test-explore test-compat lint format typecheck check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job on the bundled examples: each project laid out like a repository of
# its own (pyproject.toml with [tool.cnnshape], tests, committed baselines), run
# with the --cnn-shapes report; broken/ documents classic mistakes, whose models
# fail as their tests expect (xfailed). Then one diagnostic from the command line.
EXAMPLES := lenet vgg_style resnet_style dynamic unet_style broken

demo: $(STAMP)
	@for project in $(EXAMPLES); do \
		echo; echo "=== examples/$$project: pytest --cnn-shapes"; \
		(cd examples/$$project && $(abspath $(BIN))/python -m pytest -q --cnn-shapes --cnn-shapes-depth=1) \
			|| { echo "demo: examples/$$project failed"; exit 1; }; \
	done
	@echo; echo "=== the command line: cnnshape check examples/broken/models.py:FlattenMismatch --input 1x1x28x28"
	@$(BIN)/cnnshape check examples/broken/models.py:FlattenMismatch --input 1x1x28x28; \
		rc=$$?; if [ $$rc -ne 1 ]; then echo "demo: the broken example should fail with exit 1, got $$rc"; exit 1; fi
	@echo; echo "demo: all $(words $(EXAMPLES)) example projects passed; the broken models failed as their tests expected."

# The examples of README.md, docs/ and the notebook (make doctest), then the whole suite
# on all cores, with the coverage of pytest_cnnshape printed at the end.
# pytest exits 5 when nothing was collected: not a failure of this target.
test: $(STAMP) $(TEST_DOCS)
	$(BIN)/python -m pytest $(PYTEST_ARGS) --cov=pytest_cnnshape; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

# Only the examples: every Python and console example of README.md and docs/, its shown
# output compared with what the tool prints, and the notebook tour executed (a cell that
# raises fails it), each item named.
doctest: $(STAMP)
	$(BIN)/python -m pytest -v $(PYTEST_ARGS) $(DOCTEST_ARGS) $(DOC_EXAMPLES)

# The documentation site, built into site/ with every warning an error (a dead link or
# anchor among them). The docs extra (mkdocs, Material, mkdocstrings) installs from PyPI.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

# Every property test (pytest -m hypothesis) from random seeds, each with EXPLORE_SCALE
# times its budget, in rounds of fresh seeds for EXPLORE_BUDGET seconds (tests not started
# by then are skipped and listed). Each seed is printed; make test-explore
# EXPLORE_SEED=<seed> replays one round exactly.
EXPLORE_BUDGET ?= 180
EXPLORE_SCALE ?= 2
EXPLORE_SEED ?=
test-explore: $(STAMP)
	$(BIN)/python -m tests.explore --budget $(EXPLORE_BUDGET) --scale $(EXPLORE_SCALE) \
		$(if $(EXPLORE_SEED),--seed $(EXPLORE_SEED)) -- $(PYTEST_ARGS)

# The same suite on the second torch build this project is tested with, in its own venv.
# Not the examples of README.md and docs/: their shown output is that of the pinned torch
# (torch's own words quoted in a diagnostic change between releases).
test-compat:
	$(MAKE) test VENV=$(COMPAT_VENV) TORCH_SPEC=$(COMPAT_TORCH) TEST_DOCS=

# ruff (lint and format check) and the layer rules (import-linter).
lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python benchmarks/trace_speed.py

clean:
	rm -rf $(VENV) $(COMPAT_VENV) site .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage build *.egg-info
