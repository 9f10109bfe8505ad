# The README's two commands are `make bench` and `make test`; each one does the whole set-up first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.polydiff-installed
PACKAGES := $(sort $(wildcard packages/*))
# torch is pinned to the release that lies on this machine's disk; the packages themselves accept a range.
TORCH ?= torch==2.14.1
PYTEST_ARGS ?=

.PHONY: install bench test test-slow lint clean

install: $(STAMP)

$(STAMP): pyproject.toml $(wildcard packages/*/pyproject.toml) Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet --group dev $(foreach p,$(PACKAGES),-e "$(p)[bench]")
	touch $(STAMP)

bench: install
	$(VENV)/bin/polydiff bench all --quick --out bench-out

test: install
	$(PY) -m pytest -m "not slow" -p no:cacheprovider $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m slow -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check packages tests

clean:
	rm -rf $(VENV) bench-out
