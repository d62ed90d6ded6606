# pyro-cvae: `make demo` trains a short run on the bundled MNIST; `make test` runs the suite.
# Both create .venv when it is missing. torch is pinned by constraints.txt (CPU build, no CUDA wheels).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv browser demo test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade-strategy only-if-needed -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,app]'
	touch $(STAMP)

# The browser tests need Chromium: Debian's package, installed here when missing and root.
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null || echo "no chromium: the browser tests are skipped (apt-get install chromium)"

demo: venv
	$(BIN)/pyro-cvae train --condition label --epochs 5 --out runs/demo --overwrite
	$(BIN)/pyro-cvae sample runs/demo --label 0,1,2,3,4,5,6,7,8,9 --n 10 --out runs/demo/digits
	@echo "demo outputs: runs/demo/samples.png, runs/demo/loss.png, runs/demo/latent.png, runs/demo/digits.png"

test: venv browser
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check pyro_cvae cli tests benchmarks

bench: venv
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf runs .pytest_cache
