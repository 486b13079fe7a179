# The README's two commands: `make demo` and `make test`. Each sets up .venv first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test

$(VENV)/.installed: pyproject.toml tools/venv.sh
	sh tools/venv.sh
	touch $@

demo: $(VENV)/.installed
	$(PY) tools/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest
