"""The fonts the formula styles draw with: the vendored ones by kind (assets/fonts, each
licence recorded there), and the families kept out of every style as "unseen fonts"."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from assets import ASSETS_DIR

#: Font families never drawn with, neither shipped nor used in training or validation:
#: the "unseen fonts" benchmark. Family → file names as their Debian packages install them
#: (assets/fonts/README.md gives the packages).
UNSEEN_FONTS: Mapping[str, tuple[str, ...]] = {
    "GNU FreeFont": ("FreeSans.ttf", "FreeSerif.ttf", "FreeMono.ttf"),
    "Computer Modern": ("cmunrm.ttf", "lmroman10-regular.otf"),
    "Charis SIL": ("CharisSIL-Regular.ttf",),
    "Andika": ("Andika-Regular.ttf",),
    "Fira Code": ("FiraCode-Regular.ttf",),
    "Comfortaa": ("Comfortaa-Regular.ttf",),
    "EB Garamond": ("EBGaramond12-Regular.otf",),
    "Go": ("Go-Regular.ttf", "Go-Mono.ttf"),
    "Junicode": ("JunicodeTwoBeta-Regular.otf",),
}
#: The unseen families' other faces (bold, italic, their other widths), as their Debian
#: packages install them: read by the benchmark only, never drawn with in training.
UNSEEN_OTHER_FACES: Mapping[str, tuple[str, ...]] = {
    "GNU FreeFont": (
        "FreeSansBold.ttf",
        "FreeSerifBold.ttf",
        "FreeMonoBold.ttf",
        "FreeSansOblique.ttf",
        "FreeSerifItalic.ttf",
    ),
    "Computer Modern": ("cmunbx.ttf", "cmunti.ttf", "cmunss.ttf", "cmunsx.ttf"),
    "Charis SIL": ("CharisSIL-Bold.ttf", "CharisSIL-Italic.ttf"),
    "Andika": ("Andika-Bold.ttf", "Andika-Italic.ttf"),
    "Fira Code": ("FiraCode-Bold.ttf", "FiraCode-SemiBold.ttf"),
    "Comfortaa": ("Comfortaa-Bold.ttf",),
    "EB Garamond": ("EBGaramond12-Bold.otf", "EBGaramond12-Italic.otf"),
    "Go": ("Go-Bold.ttf", "Go-Italic.ttf", "Go-Mono-Bold.ttf"),
    "Junicode": ("JunicodeTwoBeta-Bold.otf", "JunicodeTwoBeta-Italic.otf"),
}
#: The file-name prefixes of every file of the unseen families, the faces named above and
#: the other widths and optical sizes their packages install (`benchmarks.formula_printed`).
UNSEEN_PREFIXES = (
    "Free",
    "cmun",
    "lmroman",
    "CharisSIL",
    "Andika",
    "FiraCode",
    "Comfortaa",
    "EBGaramond",
    "Go-",
    "Junicode",
)
_FONT_SUFFIXES = (".ttf", ".otf")


def font_paths(kind: str) -> list[Path]:
    """The vendored fonts of a kind: "captcha", "handwriting" or "printed"."""
    folder = ASSETS_DIR / "fonts" / kind
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _FONT_SUFFIXES)


def installed(*folders: Path) -> dict[str, Path]:
    """Every font file under `folders` (by default where Debian installs fonts), by file
    name; the first found where a name repeats."""
    roots = folders or (Path("/usr/share/fonts"), Path("/usr/share/texmf/fonts"))
    found: dict[str, Path] = {}
    for root in roots:
        if root.is_dir():
            for path in root.rglob("*"):
                if path.suffix.lower() in _FONT_SUFFIXES:
                    found.setdefault(path.name, path)
    return found


def unseen_font_paths(
    *folders: Path, faces: Mapping[str, tuple[str, ...]] = UNSEEN_FONTS
) -> dict[str, list[Path]]:
    """The unseen families' files found under `folders` (`installed`), family by family;
    families with no file found are left out. `faces` names the files
    (`UNSEEN_OTHER_FACES` for the bold and italic ones)."""
    found = installed(*folders)
    families = {
        family: [found[name] for name in names if name in found] for family, names in faces.items()
    }
    return {family: paths for family, paths in families.items() if paths}


@lru_cache(maxsize=1024)
def font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


@lru_cache(maxsize=64)
def digit_height_per_point(path: Path) -> float:
    """How tall a font's digits are per point of size, so fonts of different designs
    draw digits of the same height."""
    face = font(path, 100)
    heights = [face.getbbox(d)[3] - face.getbbox(d)[1] for d in "0123456789"]
    return sum(heights) / len(heights) / 100
