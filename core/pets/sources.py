"""Reading a dataset's files in place, from a folder or from zip files (Kaggle's train.zip and
test.zip, or the competition zip that holds them).

A sample's path is a chain of names joined by `!`: the first is resolved in the dataset root
(a folder, or a zip file), each further one inside the zip the previous one names. So in a
folder holding train.zip, `train.zip!train/cat.1.jpg`; in the competition zip,
`train.zip!train/cat.1.jpg` names the inner zip first. Nothing is ever written beside the
user's files; an inner zip that is compressed (so cannot be read in place) is copied once
into a cache folder that the caller chooses.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import struct
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

SEPARATOR = "!"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_MAGIC = b"PK\x03\x04"


class SourceError(Exception):
    """A file of the dataset cannot be read; `kind` as for ImageProblem."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(detail)


def unsafe_member(name: str) -> bool:
    """True for zip member names that would escape a folder: absolute or with '..'."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    return ".." in PurePosixPath(name.replace("\\", "/")).parts


class _Window(io.RawIOBase):
    """A read-only, seekable view of bytes [start, start + length) of a file: a zip stored
    uncompressed inside another zip, read in place."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed with the window
        self._start = start
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), max(0, self._length - self._pos))
        if size == 0:
            return 0
        self._file.seek(self._start + self._pos)
        data = self._file.read(size)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


class Container:
    """A folder or a zip: lists files and reads them."""

    def names(self) -> Iterator[str]:
        """The names of the files it holds."""
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FolderContainer(Container):
    def __init__(self, root: Path, max_depth: int = 3) -> None:
        self.root = root
        self.max_depth = max_depth
        #: (name, why) for entries that names() passed over: links that lead nowhere, in a
        #: loop or to a folder already listed
        self.problems: list[tuple[str, str]] = []

    def names(self) -> Iterator[str]:
        """Files of the root and of its sub-folders down to `max_depth` levels (hidden ones,
        such as .labelscope, skipped). Links are followed, but a folder is listed once
        however many links lead to it, so a link back up the tree (`train/loop -> .`) adds
        nothing; broken and looping links are recorded in `problems`."""
        self.problems = []
        seen: set[tuple[int, int]] = set()
        try:
            info = os.stat(self.root)
            seen.add((info.st_dev, info.st_ino))
        except OSError:
            pass
        stack = [("", 1)]
        while stack:
            prefix, depth = stack.pop()
            folder = os.path.join(self.root, prefix) if prefix else str(self.root)
            try:
                entries = list(os.scandir(folder))
            except OSError as error:
                raise SourceError("unreadable", f"cannot read {folder}: {error.strerror}") from None
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                rel = f"{prefix}/{entry.name}" if prefix else entry.name
                try:
                    is_dir, is_file = entry.is_dir(), entry.is_file()
                    info = entry.stat() if is_dir else None
                except OSError as error:  # a link to itself, or one it cannot follow
                    self.problems.append((rel, f"a link that cannot be followed: {error.strerror}"))
                    continue
                if is_dir and info is not None:
                    key = (info.st_dev, info.st_ino)
                    if key in seen:
                        if entry.is_symlink():
                            self.problems.append((rel, "a link to a folder already listed"))
                        continue
                    seen.add(key)
                    if depth < self.max_depth:
                        stack.append((rel, depth + 1))
                elif is_file:
                    yield rel
                elif entry.is_symlink():
                    self.problems.append((rel, "a link to something that does not exist"))

    def folders(self) -> list[str]:
        """The names of the root's sub-folders."""
        try:
            with os.scandir(self.root) as entries:
                return [e.name for e in entries if e.is_dir()]
        except OSError:
            return []

    def stat(self, name: str) -> tuple[int, str]:
        info = os.stat(self.root / name)
        return info.st_size, f"{info.st_mtime_ns}"

    def read(self, name: str) -> bytes:
        path = self.root / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise SourceError("missing", "the file does not exist any more") from None
        except OSError as error:
            raise SourceError("unreadable", f"cannot be read ({error.strerror})") from None

    def physical(self, name: str) -> Path:
        return self.root / name


class ZipContainer(Container):
    def __init__(self, source: Path | io.RawIOBase, stamp: str) -> None:
        try:
            self.zip = zipfile.ZipFile(source)  # type: ignore[arg-type]
        except (zipfile.BadZipFile, OSError) as error:
            raise SourceError("undecodable", f"not a readable zip file ({error})") from None
        self.stamp = stamp
        # the zip's own file on disk, where members stored uncompressed can be read in place
        self.physical = Path(source) if isinstance(source, (str, Path)) else None
        self._lock = threading.Lock()

    def names(self) -> Iterator[str]:
        for info in self.zip.infolist():
            if not info.is_dir():
                yield info.filename

    def read(self, name: str) -> bytes:
        if unsafe_member(name):
            raise SourceError("unreadable", "refused: the zip entry's path is absolute or has ..")
        try:
            with self._lock:
                return self.zip.read(name)
        except KeyError:
            raise SourceError("missing", "the zip has no such entry") from None
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise SourceError("truncated", f"the zip entry cannot be read ({error})") from None

    def member_window(self, name: str, path: Path) -> _Window | None:
        """An in-place view of member `name` if it is stored uncompressed, else None."""
        info = self.zip.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with open(path, "rb") as handle:
            handle.seek(info.header_offset)
            header = handle.read(_LOCAL_HEADER.size)
        fields = _LOCAL_HEADER.unpack(header)
        if fields[0] != _LOCAL_MAGIC:
            return None
        start = info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]
        return _Window(path, start, info.file_size)

    def close(self) -> None:
        self.zip.close()


class Source:
    """A dataset root (folder or zip) and every zip inside it, opened on demand.

    Reading is thread-safe: thumbnails are decoded by a pool of threads.
    """

    def __init__(self, root: Path | str, cache_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        if self.root.is_dir():
            self._top: Container = FolderContainer(self.root)
        elif self.root.is_file():
            self._top = ZipContainer(self.root, _file_stamp(self.root))
        else:
            raise SourceError("missing", f"{self.root} does not exist")
        self._zips: dict[str, Container] = {}

    @property
    def is_zip(self) -> bool:
        return isinstance(self._top, ZipContainer)

    def container(self, chain: str) -> Container:
        """The container that a chain prefix such as `train.zip` (or '') names."""
        if not chain:
            return self._top
        with self._lock:
            found = self._zips.get(chain)
            if found is None:
                found = self._open_zip(chain)
                self._zips[chain] = found
            return found

    def _open_zip(self, chain: str) -> Container:
        parent_chain, _, name = chain.rpartition(SEPARATOR)
        parent = self._top if not parent_chain else self._zips.get(parent_chain)
        if parent is None:
            raise SourceError("missing", f"{parent_chain} is not open")
        if isinstance(parent, FolderContainer):
            path = parent.physical(name)
            return ZipContainer(path, _file_stamp(path))
        assert isinstance(parent, ZipContainer)
        if parent.physical is not None:  # the competition zip, opened or inside the folder
            window = parent.member_window(name, parent.physical)
            if window is not None:
                return ZipContainer(window, f"{parent.stamp}:{name}")
        return ZipContainer(self._extracted(parent, name), parent.stamp)

    def _extracted(self, parent: ZipContainer, name: str) -> Path:
        """A compressed zip inside a zip cannot be read in place: copy it once to the cache."""
        if self.cache_dir is None:
            raise SourceError("unreadable", f"{name} is compressed inside the zip")
        digest = hashlib.sha1(f"{self.root.resolve()}|{parent.stamp}|{name}".encode()).hexdigest()
        target = self.cache_dir / "zips" / f"{digest[:16]}-{Path(name).name}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            with parent.zip.open(name) as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(partial, target)
        return target

    def read(self, path: str) -> bytes:
        chain, _, name = path.rpartition(SEPARATOR)
        return self.container(chain).read(name)

    def size_and_stamp(self, path: str) -> tuple[int, str]:
        """The file's size and change stamp (what a cache keys on)."""
        chain, _, name = path.rpartition(SEPARATOR)
        container = self.container(chain)
        if isinstance(container, FolderContainer):
            try:
                return container.stat(name)
            except OSError as error:
                raise SourceError("missing", f"cannot stat ({error.strerror})") from None
        assert isinstance(container, ZipContainer)
        info = container.zip.getinfo(name)
        return info.file_size, f"{container.stamp}:{info.CRC:08x}"

    def physical_path(self, path: str) -> Path | None:
        """The file on disk for a plain folder sample, else None (it lives in a zip)."""
        if SEPARATOR in path or not isinstance(self._top, FolderContainer):
            return None
        return self.root / path

    def close(self) -> None:
        with self._lock:
            for container in self._zips.values():
                container.close()
            self._zips.clear()
        self._top.close()


def _file_stamp(path: Path) -> str:
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise SourceError("unreadable", f"{path} is not a file")
    return f"{info.st_size}:{info.st_mtime_ns}"
