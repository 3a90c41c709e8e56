# Set-up and everyday commands. `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# What the services, the demos and the desktop client need (`make run`, `make install`).
RUN_EXTRAS := gateway,stt,translation,store,local,demos,models,gui,tts
# Debian packages for running: espeak-ng (demo speech), libportaudio2 (microphone capture), the
# xcb libraries (the Qt desktop client), xdotool and xclip (voice typing).
APT_PACKAGES := espeak-ng libportaudio2 libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 \
	libxcb-render-util0 libxkbcommon-x11-0 xdotool xclip
# Only for `make test`: docker-compose and haproxy (offline validation of compose and the load
# balancer), Xvfb (GUI tests and screenshots), a real PostgreSQL server (initdb in a temp dir)
# and pg_dump/pg_restore for the transcript store, Chromium and its WebDriver for the web page,
# prometheus (promtool and a real Prometheus for the alert-rule and scrape tests).
TEST_APT_PACKAGES := docker-compose haproxy xvfb xcompmgr postgresql chromium chromium-driver prometheus

.PHONY: install install-test system-deps test-deps apt-install run up test test-slow test-margins lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(RUN_EXTRAS)]'
	touch $(STAMP)

# The test-only Python packages (the `dev` extra) on top.
install-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[$(RUN_EXTRAS),dev]'
	touch $(TEST_STAMP)

# Installs the Debian packages that are missing, with apt-get, and says so.
system-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

test-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_APT_PACKAGES)"

apt-install:
	@missing=""; for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
			|| { echo "could not install:$$missing (the GUI, test speech, compose validation or the browser test may be skipped)"; }; \
	fi

# The whole pipeline on embedded defaults, then the demo client against it.
run: install
	$(VENV)/bin/speech-pipeline demo

# The stack alone, until Ctrl+C.
up: install
	$(VENV)/bin/speech-pipeline up

test: install-test test-deps
	$(PY) -m pytest

test-slow: install-test test-deps
	$(PY) -m pytest -m slow

# The tests that assert on a model's output, with a table of each value, its limit and its
# margin (CLOSE under 20 %). Pin CTranslate2's kernels to compare: make test-margins CT2_FORCE_CPU_ISA=GENERIC
test-margins: install-test
	$(PY) -m pytest -m model_output --margins

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy common gateway stt_worker translation_worker speech_client transcript_store benchmarks demos client_gui

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
