# One-command entry points. Every target that runs code depends on `setup`,
# so `make demo`, `make test` and `make bench` work on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.setup-stamp
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-fast bench bench-rhythm lint m4l model clean

setup: $(STAMP)

# audiocraft 1.3.0 pins torch==2.1.0, av==11 and xformers<0.0.23: install it with
# --no-deps next to torch 2.13 and list its real dependencies in pyproject.toml.
$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps audiocraft==1.3.0 xformers==0.0.35 torchaudio==2.11.0
	$(PY) -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 1)" \
	  && rm -f $(VENV)/lib/python3*/site-packages/torchaudio/lib/*.so || true
	$(PIP) install -q -e '.[dev]'
	$(PY) -c "import darc_bridge.compat; darc_bridge.compat.import_audiocraft(); print('audiocraft ok')"
	# Compile librosa's numba kernels once, sequentially: parallel test workers compiling them at the
	# same moment can corrupt numba's on-disk cache (numba/numba#10128).
	$(PY) -m darc_bridge.warmup
	touch $(STAMP)

demo: setup
	$(PY) -m darc_bridge.demo --out demo_out

test: setup
	$(PY) -m pytest -q -n 2 --timeout 900 tests

test-fast: setup
	$(PY) -m pytest -q -m "not slow" tests

bench: setup
	$(PY) -m darc_bridge.bench

bench-rhythm: setup
	$(PY) -m darc_bridge.bench.rhythm --split held_out

lint: setup
	$(VENV)/bin/ruff check darc_bridge tests

m4l: setup
	$(PY) -m darc_bridge.daw.build_m4l

# The shipped DARC model (docs/training.md): data -> codec -> cache -> STAGE base -> DARC -> eval gate,
# resumable; writes models/darc-mini only when the gate passes, else models/darc-mini-wip (commit it:
# build/ does not outlive the machine). SCALE=smoke|cpu|full (full: one GPU, at most 9 minutes);
# PACK=FILE uses a sample pack built where hydrogen-drumkits is installed; RESUME=models/darc-mini
# (or models/darc-mini-wip) continues that model.
SCALE ?= full
model: setup
	$(PY) -m darc_bridge.cli.main train recipe --preset mini --scale $(SCALE) \
	  $(if $(PACK),--pack $(PACK)) $(if $(RESUME),--resume-from $(RESUME))

clean:
	rm -rf $(VENV) demo_out bench_out .pytest_cache
