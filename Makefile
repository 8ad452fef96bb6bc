# The two commands of the README. Both set up everything they need first
# (venv, Debian prerequisites, the patched MinkowskiEngine wheel).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo clean-venv

setup:
	VENV=$(VENV) ./tools/setup_env.sh

test: setup
	$(PY) -m pytest tests -q

demo: setup
	$(PY) tools/demo.py $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV)
