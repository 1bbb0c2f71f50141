# Chorus — the README names `make run` and `make test`; everything else is for developers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test check fmt bench install clean-instance

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Start web, worker and scheduler on embedded PostgreSQL + Redis (or DATABASE_URL / REDIS_URL).
run: $(STAMP)
	$(BIN)/python -m web.launch run

## The whole suite against real PostgreSQL, Redis, SMTP and Chromium, on throwaway databases.
test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Throughput of the count endpoint and the signing path (needs Debian's wrk).
bench: $(STAMP)
	$(BIN)/python -m bench count
	$(BIN)/python -m bench sign

clean-instance:
	rm -rf instance
