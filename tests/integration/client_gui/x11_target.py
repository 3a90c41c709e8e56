"""A tiny text window that takes the keyboard focus and writes its text to a file (test target).

The file appears only once the window has the focus, so a test can wait for it before typing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication, QPlainTextEdit


def main() -> None:
    out = Path(sys.argv[1])
    app = QApplication(sys.argv[:1])
    editor = QPlainTextEdit()
    editor.setWindowTitle("Keystroke target")
    editor.setGeometry(600, 40, 640, 300)
    editor.show()
    editor.activateWindow()
    editor.setFocus()
    focused = False

    def dump() -> None:
        nonlocal focused
        focused = focused or (editor.hasFocus() and editor.isActiveWindow())
        if focused:
            out.write_text(editor.toPlainText(), encoding="utf-8")
        else:
            editor.activateWindow()
            editor.setFocus()

    timer = QTimer()
    timer.timeout.connect(dump)
    timer.start(100)
    app.exec_()


if __name__ == "__main__":
    main()
