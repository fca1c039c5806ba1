"""Checkpoints: written atomically, read safely.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts, tagged with a format,
a kind and a version. It is written to a temporary file beside the target and moved into
place, so a crash mid-write leaves the previous file intact; it is read with
`torch.load(weights_only=True)`, so a file cannot run code, and every failure becomes a
CheckpointError that says what is wrong.
"""

from __future__ import annotations

import datetime
import errno
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

from core import __version__
from core.jobs import JobError

FORMAT = "labelscope-checkpoint"
VERSION = 1


class CheckpointError(JobError):
    """A checkpoint that cannot be used, and why (for people)."""


def save(path: Path | str, payload: dict[str, Any], kind: str) -> Path:
    """Write `payload` as a checkpoint of `kind`, atomically. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "labelscope": __version__,
        **payload,
    }
    remove_stale_temporaries(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            import torch  # loaded with the first checkpoint, not with the app

            torch.save(record, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, (OSError, RuntimeError)):  # torch.save reports a full disk so
            raise CheckpointError(
                f"{path.name} was not saved ({_reason(error)}); "
                + ("the previous one is intact." if path.exists() else "nothing was written.")
            ) from error
        raise
    return path


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "the disk is full"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error)


def remove_stale_temporaries(path: Path, older_than: float = 60.0) -> int:
    """Remove the temporary files that a process killed mid-save left beside `path`
    (`.<name>.XXXXXXXX`), unless they are recent enough to be another save in progress.
    Returns how many were removed."""
    import time

    removed = 0
    now = time.time()
    for stale in path.parent.glob(f".{path.name}.*"):
        try:
            if now - stale.stat().st_mtime > older_than:
                stale.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def safe_load(path: Path | str) -> Any:
    """`torch.load` onto the CPU with `weights_only=True`: a file that would run code, or is
    damaged, missing or unreadable, raises CheckpointError with the reason."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. "pickle protocol 4"
            import torch

            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist.") from None
    except PermissionError:
        raise CheckpointError(f"{path} cannot be read: permission denied.") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a checkpoint file.") from None
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error) or _calls_code(path):
            # the safe unpickler met a class or function to call
            raise CheckpointError(
                f"{path} was refused: it holds Python objects that could run code when "
                "loaded (code, or objects a safe load does not allow), not just weights. "
                "Load only files from a source you trust."
            ) from error
        raise CheckpointError(
            f"{path} is damaged or incomplete, or is not a PyTorch file."
        ) from error
    except Exception as error:  # damaged input breaks the unpickler in many ways
        raise CheckpointError(
            f"{path} is damaged or incomplete, or is not a PyTorch file "
            f"({type(error).__name__}: {error})."
        ) from error


_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}


def _calls_code(path: Path) -> bool:
    """Whether `path` is a plain pickle that names functions or classes to call (read
    opcode by opcode, never executed). Files torch writes are zip archives, not this."""
    import pickletools

    try:
        with path.open("rb") as stream:
            return any(op.name in _CODE_OPCODES for op, _arg, _pos in pickletools.genops(stream))
    except Exception:  # not a pickle at all: damaged or something else
        return False


def load(path: Path | str, kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; checks its format and, when given, its kind."""
    path = Path(path)
    record = safe_load(path)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a PyTorch file, but not a Labelscope checkpoint.")
    if record.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer Labelscope ({record.get('labelscope')}); "
            "update Labelscope to read it."
        )
    if kind is not None and record.get("kind") != kind:
        raise CheckpointError(f"{path} is a {record.get('kind')!r} checkpoint, not a {kind!r} one.")
    return record
