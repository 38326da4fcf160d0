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

run: $(STAMP)
	$(BIN)/gateway serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

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
