# Set-up and entry points. `make test` is the README's test command and what CI runs.
VENV ?= .venv
PY := $(VENV)/bin/python
export BAGTRICKS_CACHE ?= $(HOME)/.cache/bagtricks

.PHONY: setup test demo clean-venv data-packages

# Re-runs only when the installer or the project's dependencies change; the mmcv wheel is cached
# in $(BAGTRICKS_CACHE). MMCV_WHEEL=path/to/mmcv-2.1.0-*.whl installs a prebuilt one (e.g. CUDA).
setup: $(VENV)/.installed

$(VENV)/.installed: tools/install_stack.sh pyproject.toml
	VENV=$(VENV) bash tools/install_stack.sh
	touch $@

# Debian packages with the real data the tests and the demo use (skipped where apt is missing).
data-packages:
	@if command -v apt-get >/dev/null; then \
	  dpkg -s labelme-examples dataset-fashion-mnist >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq labelme-examples dataset-fashion-mnist >/dev/null; }; \
	else echo "apt-get not available: tests that need labelme-examples will be skipped"; fi

test: setup data-packages
	$(PY) -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
