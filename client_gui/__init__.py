"""PyQt5 desktop client: live subtitles overlay, voice typing, device and language selection.

Run with ``python -m client_gui``; see :mod:`client_gui.app` for the command-line options.
"""
