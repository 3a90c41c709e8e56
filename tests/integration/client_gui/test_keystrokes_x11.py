"""Voice typing for real under Xvfb: pynput and xdotool type into another application's window,
non-ASCII goes through the clipboard (pyperclip + xclip) and the clipboard is restored.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("Xvfb") and shutil.which("xclip") and shutil.which("xdotool")),
        reason="needs Debian's xvfb, xclip and xdotool",
    ),
]

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent

TYPING_SCRIPT = """
import sys, pyperclip
from client_gui.keystrokes import Typist, select_backend
from client_gui.typing_diff import TypingBuffer
pyperclip.copy("user clipboard")
errors = []
typist = Typist(backend_factory=lambda: select_backend(sys.argv[1]), on_error=errors.append)
buf = TypingBuffer()
for seg, text, final in [(1, "Hello wor", False), (1, "Hello world.", True),
                         (2, "Ça va, señor", False), (2, "Ça va, señora? 日本", True)]:
    typist.submit(buf.update(seg, text, final=final))
typist.close(timeout=60)
assert not errors, errors
print(pyperclip.paste())
"""


@pytest.fixture
def display(tmp_path: Path) -> Iterator[str]:
    """A private Xvfb display, with -displayfd so no display number is guessed."""
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    try:
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(10)


@pytest.mark.parametrize("backend", ["pynput", "xdotool"])
def test_typing_into_another_window(display: str, tmp_path: Path, backend: str) -> None:
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    out = tmp_path / "typed.txt"
    target = subprocess.Popen([sys.executable, str(HERE / "x11_target.py"), str(out)], env=env)
    try:
        deadline = time.monotonic() + 20
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert out.exists(), "the target window did not start"
        # Files, not pipes: xclip stays in the background to serve the clipboard and would
        # hold a pipe open until the display goes away.
        stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        with stdout.open("w") as out_file, stderr.open("w") as err_file:
            typed = subprocess.run(
                [sys.executable, "-c", TYPING_SCRIPT, backend],
                env=env, cwd=ROOT, stdout=out_file, stderr=err_file, timeout=120,
            )
        assert typed.returncode == 0, stderr.read_text()[-2000:]
        assert stdout.read_text().strip() == "user clipboard"  # restored after the pastes
        # The target writes its text every 100 ms; on a loaded machine the X server and Qt
        # may take a while to deliver the keys, so wait for the text (bounded), not a fixed time.
        expected = "Hello world. Ça va, señora? 日本"
        deadline = time.monotonic() + 15
        while out.read_text(encoding="utf-8") != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert out.read_text(encoding="utf-8") == expected
    finally:
        target.terminate()
        target.wait(10)
