# Two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean

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

# Every bench/*.py, bounded and on 127.0.0.1; figures in bench/results/latest.{json,md} and README.md.
# The webhook load comes from wrk (Debian), installed here when missing and run as root.
bench: $(STAMP)
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -qq wrk >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq wrk >/dev/null) || echo "wrk unavailable: the webhook bench uses its Python client"
	$(BIN)/python bench/run.py $(BENCH)

clean:
	rm -rf $(VENV) var
