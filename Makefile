# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create (or reuse) .venv, install the project with the extras they need, and install
# any missing Debian packages (libzbar0, mosquitto, chromium) with apt-get when run as root.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: demo test fuzz bench lint fmt deb-runtime deb-test clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "checkpost needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all]'
	@touch $@

deb-runtime:
	@sh scripts/ensure-deb.sh libzbar0 mosquitto

deb-test:
	@sh scripts/ensure-deb.sh libzbar0 mosquitto chromium

demo: $(STAMP) deb-runtime
	$(BIN)/checkpost demo --duration 45 $(ARGS)

test: $(STAMP) deb-test
	$(BIN)/python -m pytest -q $(ARGS)

# Properties with fresh random seeds and ten times the examples (`make test` is derandomised).
fuzz: $(STAMP) deb-test
	CHECKPOST_HYPOTHESIS=fuzz $(BIN)/python -m pytest -q $(ARGS)

bench: $(STAMP) deb-runtime
	$(BIN)/checkpost bench verify
	$(BIN)/checkpost bench decode

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
