# Set-up and checks. `make run` / `make test` create .venv from the requirements when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test demo demo-terrain clean-venv
PORT   ?= 8501

$(STAMP): requirements.txt requirements-dev.txt
	@# Debian's python3 has no ensurepip until python3-venv is installed (needs root, as on CI).
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  echo "python3 -m venv failed; installing Debian's python3-venv (apt-get)"; \
	  (apt-get install -y python3-venv || (apt-get update && apt-get install -y python3-venv)) >/dev/null \
	  && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $(STAMP)

# The app on the default model (faces64), bound to localhost only; Streamlit prints the URL.
run: $(STAMP)
	@echo "Neural Collage Toolkit: open http://127.0.0.1:$(PORT) (Ctrl-C stops)"
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m toolkit demo --out demo.png

# Label swap with the shipped materials model (no download): central regions swapped to another class.
demo-terrain: $(STAMP)
	$(PY) -m toolkit demo --model terrain64 --out demo_terrain.png

clean-venv:
	rm -rf $(VENV)
