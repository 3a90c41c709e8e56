#!/usr/bin/env bash
# Screenshots of both modes under Xvfb, from real runs of the smoke mode against a stack.
#   client_gui/docs/make_screenshots.sh [WS_URL] [WAV]
# Needs Debian's xvfb, xcompmgr (translucency), xclip, libxcb-icccm4, libxcb-keysyms1,
# libxcb-xinerama0, and a running stack (speech-pipeline up). Run from the repository root.
set -euo pipefail
URL=${1:-ws://127.0.0.1:5026/}
WAV=${2:-tests/fixtures/stt/en_weather.wav}
PY=${PYTHON:-.venv/bin/python}
OUT=client_gui/docs
TMP=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

Xvfb -displayfd 3 -screen 0 1280x720x24 -nolisten tcp 3>"$TMP/display" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$TMP/display" ] && break; sleep 0.1; done
export DISPLAY=":$(head -n1 "$TMP/display")"
xcompmgr 2>/dev/null &
PIDS+=($!)
sleep 1

"$PY" -m client_gui --audio-file "$WAV" --mode subtitles --exit-after-final \
  --screenshot "$OUT/subtitles.png" --url "$URL" --source-language auto

# Voice typing types into another application: a text window that holds the focus.
"$PY" tests/integration/client_gui/x11_target.py "$TMP/typed.txt" &
PIDS+=($!)
for _ in $(seq 100); do [ -e "$TMP/typed.txt" ] && break; sleep 0.1; done
"$PY" -m client_gui --audio-file "$WAV" --mode typing --keystrokes --exit-after-final \
  --screenshot "$OUT/typing.png" --url "$URL" --source-language auto
echo "typed into the other window: $(cat "$TMP/typed.txt")"
