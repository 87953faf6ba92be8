# Two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean fuzz

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/widip demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Schemathesis against a real web process, ≥ 5,000 cases per identity (make test runs a few hundred).
fuzz: $(STAMP)
	WIDIP_FUZZ_CASES=$${WIDIP_FUZZ_CASES:-6000} $(BIN)/python -m pytest -q -s tests/test_fuzz_openapi.py

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var
