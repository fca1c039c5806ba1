"""The installed Qt binding must not drop references to None: PySide6 6.12.0 does on every
call that returns nothing, which before Python 3.12 crashes the app after enough painting
(pyproject.toml excludes it there). This proves the binding CI installs is sound."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage, QPainter


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_void_calls_keep_none_alive(qapp):
    image = QImage(32, 32, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    try:
        before = sys.getrefcount(None)
        for _ in range(2000):
            painter.save()
            painter.fillRect(QRect(0, 0, 4, 4), QColor("red"))
            painter.restore()
        lost = before - sys.getrefcount(None)
    finally:
        painter.end()
    assert lost < 100, f"the Qt binding dropped {lost} references to None"
