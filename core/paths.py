"""Where Labelscope keeps its own files: the per-user data directory and torch's cache."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

#: Overrides the per-user data directory (tests, portable installs).
DATA_DIR_ENV = "LABELSCOPE_DATA_DIR"


def data_dir() -> Path:
    """The per-user data directory (not created here).

    Windows: %LOCALAPPDATA%\\Labelscope; macOS: ~/Library/Application Support/Labelscope;
    elsewhere $XDG_DATA_HOME/labelscope (default ~/.local/share/labelscope).
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "Labelscope"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "Labelscope"
    base = os.environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return Path(base) / "labelscope"


def per_dataset_file(kind: str, root: Path | str) -> Path:
    """A file of the data directory's `kind` folder that belongs to the dataset at `root`:
    named after it, with a digest of its full path so that two datasets never share one."""
    root = Path(root).resolve()
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:16]
    return data_dir() / kind / f"{root.name}-{digest}.sqlite"


def is_writable(directory: Path) -> bool:
    """True when a file can be created in `directory` (or in the parent that would hold it).

    Tries for real rather than trusting permission bits, which lie on network shares and
    for root.
    """
    probe_dir = directory
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            return False
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        return False
    try:
        with tempfile.NamedTemporaryFile(dir=probe_dir, prefix=".labelscope-probe-"):
            pass
    except OSError:
        return False
    return True


def torch_hub_dir() -> Path:
    """torch's hub directory; pretrained weights live in its `checkpoints/` folder."""
    import torch.hub

    return Path(torch.hub.get_dir())


def weights_cache_dir() -> Path:
    """Where torchvision's weights API downloads to and looks first."""
    return torch_hub_dir() / "checkpoints"
