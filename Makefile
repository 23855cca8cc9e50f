# probvae: two commands. `make demo` trains the default VAE on digits; `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench install clean

# torch is installed first, pinned to the local CPU wheel: anything that pulls torch in
# before it (pyro-ppl included) makes pip take the newest CUDA build (several GB).
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/probvae train --out runs/demo --overwrite
	$(BIN)/probvae sample runs/demo --n 64 --png runs/demo/samples.png --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/backends.py

clean:
	rm -rf $(VENV) runs *.egg-info
