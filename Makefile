# Two entry points: `make demo` runs the workflow on the bundled example, `make test` runs the
# tests. Both create (or reuse) .venv and install the package with the pins in constraints.txt.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: install profiles demo test lint clean boltz-env

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,sim]'
	# Real engine files for the tests (AMBER, CHARMM, GROMACS membrane); data only, so without
	# MDAnalysis itself.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt MDAnalysisTests
	$(MAKE) --no-print-directory profiles
	touch $@

# The environment of the Boltz-2 trunk worker (trunk.backend: boltz2): boltz pins numpy<2, so it
# lives apart from .venv. The workflow finds it as .venv-boltz (or trunk.python / BOLTZ_PYTHON).
BOLTZ_VENV := .venv-boltz
boltz-env: $(BOLTZ_VENV)/.installed

$(BOLTZ_VENV)/.installed: constraints-boltz.txt
	test -x $(BOLTZ_VENV)/bin/python || $(PYTHON) -m venv $(BOLTZ_VENV)
	$(BOLTZ_VENV)/bin/pip install -c constraints-boltz.txt torch==2.13.0
	$(BOLTZ_VENV)/bin/pip install -c constraints-boltz.txt boltz==2.2.1 safetensors
	$(BOLTZ_VENV)/bin/python -c "import boltz, torch, safetensors"
	touch $@

# `snakemake --profile runpod` looks for profiles in ~/.config/snakemake, not in profiles/:
# link ours there (an existing profile of the same name is left alone, with a warning).
PROFILE_HOME := $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake
profiles:
	@mkdir -p $(PROFILE_HOME)
	@for p in local runpod slurm; do \
	  if [ -e $(PROFILE_HOME)/$$p ] && [ "$$(readlink -f $(PROFILE_HOME)/$$p)" != "$(CURDIR)/profiles/$$p" ]; then \
	    echo "warning: $(PROFILE_HOME)/$$p exists and is not ours; use --profile profiles/$$p"; \
	  else ln -sfn $(CURDIR)/profiles/$$p $(PROFILE_HOME)/$$p; fi; \
	done

# Rules call `python -m boltzkinema`: the venv's bin goes first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

demo: $(STAMP)
	snakemake --cores $(CORES) --configfile config/config.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	snakemake --lint --configfile config/config.yaml
	$(BIN)/snakefmt --check Snakefile workflow/rules

clean:
	rm -rf results .snakemake
