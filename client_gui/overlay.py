"""Live subtitles overlay: frameless, translucent, always on top, click-through.

Sits at the bottom centre of the screen and shows one sentence (see
:mod:`client_gui.subtitle_state`) with its translation below. ``WindowTransparentForInput``
makes Qt give the window an empty X11 input shape (and WS_EX_TRANSPARENT on Windows), so
clicks go to the application underneath.
"""

from __future__ import annotations

from PyQt5.QtCore import QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QGuiApplication, QPainter, QPainterPath, QPaintEvent
from PyQt5.QtWidgets import QLabel, QVBoxLayout, QWidget

from client_gui.subtitle_state import SubtitleState, SubtitleView
from speech_client.protocol import ServerMessage

BOTTOM_MARGIN_PX = 60
WIDTH_FRACTION = 0.8
BACKGROUND = QColor(0, 0, 0, 170)


class SubtitleOverlay(QWidget):
    def __init__(self, font_size: int = 24) -> None:
        super().__init__(None)
        flags = Qt.WindowFlags(Qt.WindowType.FramelessWindowHint)
        flags |= Qt.WindowType.WindowStaysOnTopHint
        flags |= Qt.WindowType.Tool  # no taskbar entry
        flags |= Qt.WindowType.WindowTransparentForInput
        flags |= Qt.WindowType.WindowDoesNotAcceptFocus
        self.setWindowFlags(flags)
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_QuitOnClose, False)  # closing the main window quits
        self.setWindowTitle("Live subtitles")
        self.state = SubtitleState()

        self.text_label = QLabel(self)
        self.translation_label = QLabel(self)
        for label, size, color in (
            (self.text_label, font_size, "#ffffff"),
            (self.translation_label, max(10, int(font_size * 0.8)), "#ffe680"),
        ):
            font = QFont()
            font.setPointSize(size)
            font.setBold(label is self.text_label)
            label.setFont(font)
            label.setWordWrap(True)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet(f"color: {color}; background: transparent;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 12, 24, 12)
        layout.setSpacing(4)
        layout.addWidget(self.text_label)
        layout.addWidget(self.translation_label)
        self.translation_label.hide()

    def apply(self, message: ServerMessage) -> None:
        """Feed a result; the overlay shows the latest sentence only."""
        if self.state.apply(message):
            self.show_view(self.state.view)

    def show_view(self, view: SubtitleView) -> None:
        self.text_label.setText(view.text)
        self.translation_label.setText(view.translation)
        self.translation_label.setVisible(bool(view.translation))
        self.place()

    def clear(self) -> None:
        self.state.clear()
        self.show_view(self.state.view)

    def place(self) -> None:
        """Size to the text, then centre horizontally near the bottom of the screen."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        width = int(area.width() * WIDTH_FRACTION)
        layout = self.layout()
        # Word-wrapped labels: the height follows from the width, not from sizeHint().
        height = layout.totalHeightForWidth(width) if layout is not None else -1
        if height <= 0:  # no height-for-width (e.g. nothing shown yet)
            height = self.sizeHint().height()
        self.setFixedSize(width, max(1, height))
        x = area.x() + (area.width() - width) // 2
        y = area.y() + area.height() - height - BOTTOM_MARGIN_PX
        self.move(x, y)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        path = QPainterPath()
        path.addRoundedRect(QRectF(self.rect()), 14, 14)
        painter.fillPath(path, BACKGROUND)
        painter.end()
