# Set-up and checks. `make test` creates .venv from the requirements when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo demo-terrain clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m toolkit demo --out demo.png

# Label swap with the shipped materials model (no download): central regions swapped to another class.
demo-terrain: $(STAMP)
	$(PY) -m toolkit demo --model terrain64 --out demo_terrain.png

clean-venv:
	rm -rf $(VENV)
