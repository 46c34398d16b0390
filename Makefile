# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck imports pytest install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	TRUSTPORTAL_ENV=$${TRUSTPORTAL_ENV:-development} \
	TRUSTPORTAL_ALLOW_HTTP_ISSUERS=$${TRUSTPORTAL_ALLOW_HTTP_ISSUERS:-true} \
	TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS=$${TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS:-127.0.0.0/8,::1/128} \
	$(BIN)/python manage.py devstack

test: lint typecheck imports pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	TRUSTPORTAL_ENV=test $(BIN)/mypy .

# The import contracts of pyproject.toml ([tool.importlinter]): layers import only downward.
imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	TRUSTPORTAL_ENV=test $(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache *.egg-info
