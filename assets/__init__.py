"""Files shipped with Labelscope (icons, later the formula model and fonts)."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent


def icon_path(name: str) -> Path:
    """The path of `icons/<name>.svg`."""
    return ASSETS_DIR / "icons" / f"{name}.svg"
