# Every target sets itself up from nothing: a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser lint typecheck test demo clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -c "import torch, sys; sys.exit('a CUDA build of torch was installed' if torch.version.cuda else 0)"
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the dashboard screenshot test: Debian's package where we may install it;
# without it that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) ; } || \
		echo "chromium not installed: the dashboard screenshot test will skip"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck browser
	$(BIN)/pytest -q

demo: install
	$(BIN)/optuna-sm2 demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
