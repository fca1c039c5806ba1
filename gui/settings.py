"""The app's persistent settings, in QSettings under a version key so that a later layout
change can start clean instead of misreading old values."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

SETTINGS_VERSION = 1
MAX_RECENT = 8


class Settings:
    """Typed access to the values Labelscope keeps between runs."""

    def __init__(self) -> None:
        self._q = QSettings()
        self._prefix = f"v{SETTINGS_VERSION}/"

    def _get(self, key: str, default: object = None) -> object:
        return self._q.value(self._prefix + key, default)

    def _set(self, key: str, value: object) -> None:
        self._q.setValue(self._prefix + key, value)

    def sync(self) -> None:
        self._q.sync()

    def bytes(self, key: str) -> QByteArray | None:
        value = self._get(key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def set_bytes(self, key: str, value: QByteArray) -> None:
        self._set(key, value)

    def text(self, key: str, default: str = "") -> str:
        value = self._get(key, default)
        return value if isinstance(value, str) else default

    def set_text(self, key: str, value: str) -> None:
        self._set(key, value)

    def recent_folders(self) -> list[str]:
        value = self._get("recent_folders", [])
        if isinstance(value, str):  # QSettings returns a lone item as a plain string
            value = [value]
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    def add_recent_folder(self, folder: str | Path) -> list[str]:
        """Put `folder` first in the recent list; returns the new list."""
        folder = str(Path(folder).resolve())
        folders = [folder] + [f for f in self.recent_folders() if f != folder]
        folders = folders[:MAX_RECENT]
        self._set("recent_folders", folders)
        return folders

    def clear_recent_folders(self) -> None:
        self._set("recent_folders", [])
