# Two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean browser fuzz

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/widip demo

# The console's browser tests drive Debian's headless Chromium through its chromedriver (no browser download).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	  else echo "browser tests need: sudo apt-get install chromium chromium-driver" >&2; exit 1; fi; \
	fi

# Three pytest workers (pytest-xdist), each with its own embedded PostgreSQL and Valkey: most tests wait on
# real processes and servers, so even two cores run three at once well (TEST_WORKERS=0: one process).
TEST_WORKERS ?= 3
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# Schemathesis against a real web process, ≥ 5,000 cases per identity (make test runs a few hundred).
fuzz: $(STAMP)
	WIDIP_FUZZ_CASES=$${WIDIP_FUZZ_CASES:-6000} $(BIN)/python -m pytest -q -s tests/test_fuzz_openapi.py

# Every bench/*.py, bounded and on 127.0.0.1; figures in bench/results/latest.{json,md} and README.md.
# The webhook load comes from wrk (Debian), installed here when missing and run as root.
bench: $(STAMP)
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -qq wrk >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq wrk >/dev/null) || echo "wrk unavailable: the webhook bench uses its Python client"
	$(BIN)/python bench/run.py $(BENCH)

clean:
	rm -rf $(VENV) var
