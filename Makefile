# Set-up and everyday commands. `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages: espeak-ng (test speech), libportaudio2 (microphone capture), docker-compose
# (offline validation of the compose file), Xvfb and the xcb libraries (GUI screenshots).
APT_PACKAGES := espeak-ng libportaudio2 docker-compose xvfb xcompmgr libxcb-icccm4 libxcb-keysyms1 \
	libxcb-xinerama0 libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0 xdotool xclip haproxy

.PHONY: install system-deps run up test test-slow test-margins lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[models,gui,tts,dev]'
	touch $(STAMP)

# Installs the Debian packages that are missing, with apt-get, and says so.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
			|| { echo "could not install:$$missing (the GUI, test speech or compose validation may be skipped)"; }; \
	fi

# The whole pipeline on embedded defaults, then the demo client against it.
run: install
	$(VENV)/bin/speech-pipeline demo

# The stack alone, until Ctrl+C.
up: install
	$(VENV)/bin/speech-pipeline up

test: install
	$(PY) -m pytest

test-slow: install
	$(PY) -m pytest -m slow

# The tests that assert on a model's output, with a table of each value, its limit and its
# margin (CLOSE under 20 %). Pin CTranslate2's kernels to compare: make test-margins CT2_FORCE_CPU_ISA=GENERIC
test-margins: install
	$(PY) -m pytest -m model_output --margins

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy common gateway stt_worker translation_worker

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
