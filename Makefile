# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench xsd docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# The gateway with its demo partners: the mock partner plays ISIL:MOCK1 and ISIL:MOCK2 on port
# 8627 (each request is supplied and loaned unless its note picks another MOCK: scenario) and
# stops with the gateway.
run: $(STAMP)
	@$(BIN)/gateway mock-partner --agency ISIL:MOCK1 --agency ISIL:MOCK2 --scenario WILLSUPPLY_LOANED \
	    --peer ISIL:XX-GATEWAY=http://127.0.0.1:8626/iso18626 & mock=$$!; \
	trap 'kill $$mock 2>/dev/null' EXIT INT TERM; \
	$(BIN)/gateway serve

# Two test processes, tests handed out as each finishes (worksteal): a browser test is long.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal

bench: $(STAMP)
	$(BIN)/python bench/bench_messages.py

# Regenerate xsd/ from the message model (a test keeps them in sync).
xsd: $(STAMP)
	$(BIN)/gateway xsd --write xsd

# Regenerate the README's generated sections (status tables).
docs: $(STAMP)
	$(BIN)/python -c "from pathlib import Path; from gateway.docs import update_readme; update_readme(Path('README.md'))"

clean:
	rm -rf $(VENV) .pytest_cache
