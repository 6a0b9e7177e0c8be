# Set-up and checks. `make test` creates .venv from the requirements when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	@# Debian's python3 lacks ensurepip unless python3-venv is installed: fall back to virtualenv.
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  $(PYTHON) -m pip install --user -q virtualenv && $(PYTHON) -m virtualenv -q $(VENV); }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m toolkit demo --out demo.png

clean-venv:
	rm -rf $(VENV)
