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
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

SEPARATOR = "!"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_MAGIC = b"PK\x03\x04"
_END = struct.Struct("<4s4H2LH")  # end of central directory
_END_MAGIC = b"PK\x05\x06"
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_LOCATOR = struct.Struct("<4sLQL")

# What a zip of photos never needs, and only an attack has. Listing a zip holds each entry in
# memory (about 600 bytes, 5 µs): 250,000 entries cost 150 MB and a second, more than six
# times the Kaggle download's 37,500.
MAX_ENTRIES = 250_000
MAX_DIRECTORY_BYTES = 64 << 20
#: The largest image a zip member may inflate to; a 60-megapixel photo is well below it.
MAX_MEMBER_BYTES = 256 << 20
#: Photos barely compress (JPEG and PNG are compressed already): a large member that
#: inflates a hundred times is a bomb, as is an inner zip of photos that does.
MAX_RATIO = 100
_RATIO_FLOOR = 16 << 20  # smaller members may compress as well as they like
#: What a damaged zip makes zipfile raise, besides BadZipFile: an unknown version or
#: compression, an encrypted member, a broken deflate stream, offsets past the end.
_DAMAGED = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    struct.error,
    zlib.error,
)
#: Room an inner zip's copy must leave free on the cache's disk.
_FREE_MARGIN = 1 << 30


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


def _declared_directory(handle: io.RawIOBase | io.BufferedIOBase) -> tuple[int, int] | None:
    """(entries, central directory bytes) that a zip's end record declares, read before the
    directory itself is, or None where there is no end record (zipfile then says why)."""
    size = handle.seek(0, io.SEEK_END)
    tail_start = max(0, size - (_END.size + 0xFFFF))
    handle.seek(tail_start)
    tail = handle.read(size - tail_start)
    at = tail.rfind(_END_MAGIC)
    if at < 0 or at + _END.size > len(tail):
        return None
    fields = _END.unpack(tail[at : at + _END.size])
    entries, directory = fields[4], fields[5]
    locator_at = at - _END64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == b"PK\x06\x07":
        offset = _END64_LOCATOR.unpack(tail[locator_at : locator_at + _END64_LOCATOR.size])[2]
        handle.seek(offset)
        record = handle.read(_END64.size)
        if len(record) == _END64.size and record[:4] == b"PK\x06\x06":
            values = _END64.unpack(record)
            entries, directory = max(entries, values[6]), max(directory, values[7])
    return entries, directory


def _check_directory(source: Path | io.RawIOBase, label: str) -> None:
    """Refuse a zip whose directory alone would take too long or too much memory to read."""
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as handle:
                declared = _declared_directory(handle)
        else:
            declared = _declared_directory(source)
            source.seek(0)
    except (OSError, ValueError, OverflowError, struct.error):
        return  # a damaged end record: zipfile reports it
    if declared is None:
        return
    entries, directory = declared
    if entries > MAX_ENTRIES or directory > MAX_DIRECTORY_BYTES:
        raise SourceError(
            "too-large",
            f"refused: {label} lists {entries:,} entries in a {directory / 1e6:,.0f} MB "
            f"directory, more than the {MAX_ENTRIES:,} entries (or {MAX_DIRECTORY_BYTES >> 20} "
            "MB) a dataset zip is read with",
        )


def _bomb(info: zipfile.ZipInfo, limit: int) -> str | None:
    """Why a member's declared inflated size is refused, or None. zipfile never inflates a
    member past its declared size (the CRC check fails first), so the declaration is what
    has to be believable."""
    if info.file_size > limit:
        return (
            f"refused: {info.filename} would inflate to {info.file_size / 1e6:,.0f} MB, more "
            f"than the {limit / 1e6:,.0f} MB allowed"
        )
    ratio = info.file_size / max(1, info.compress_size)
    if info.file_size > _RATIO_FLOOR and ratio > MAX_RATIO:
        return (
            f"refused: {info.filename} would inflate {ratio:,.0f} times (to "
            f"{info.file_size / 1e6:,.0f} MB): a zip bomb, not a photo"
        )
    return None


class ZipContainer(Container):
    def __init__(self, source: Path | io.RawIOBase, stamp: str) -> None:
        label = Path(source).name if isinstance(source, (str, Path)) else "the inner zip"
        _check_directory(source, label)
        try:
            self.zip = zipfile.ZipFile(source)  # type: ignore[arg-type]
        except _DAMAGED as error:
            raise SourceError("undecodable", f"not a readable zip file ({error})") from None
        self.stamp = stamp
        # the zip's own file on disk, where members stored uncompressed can be read in place
        self.physical = Path(source) if isinstance(source, (str, Path)) else None
        self._lock = threading.Lock()

    def names(self) -> Iterator[str]:
        for info in self.zip.infolist():
            if info.filename and not info.filename.endswith("/"):  # a nameless entry: damage
                yield info.filename

    def read(self, name: str) -> bytes:
        if unsafe_member(name):
            raise SourceError("unreadable", "refused: the zip entry's path is absolute or has ..")
        try:
            with self._lock:
                info = self.zip.getinfo(name)
                refused = _bomb(info, MAX_MEMBER_BYTES)
                if refused:
                    raise SourceError("too-large", refused)
                return self.zip.read(info)
        except KeyError:
            raise SourceError("missing", "the zip has no such entry") from None
        except _DAMAGED as error:
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
            try:
                window = parent.member_window(name, parent.physical)
            except (*_DAMAGED, KeyError) as error:
                raise SourceError("undecodable", f"{name} cannot be read ({error})") from None
            if window is not None:
                return ZipContainer(window, f"{parent.stamp}:{name}")
        return ZipContainer(self._extracted(parent, name), parent.stamp)

    def _extracted(self, parent: ZipContainer, name: str) -> Path:
        """A compressed zip inside a zip cannot be read in place: copy it once to the cache."""
        if self.cache_dir is None:
            raise SourceError("unreadable", f"{name} is compressed inside the zip")
        try:
            info = parent.zip.getinfo(name)
        except KeyError:
            raise SourceError("missing", f"the zip has no entry {name}") from None
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        room = shutil.disk_usage(self.cache_dir).free - _FREE_MARGIN
        refused = _bomb(info, max(0, room))
        if refused:
            raise SourceError(
                "too-large", f"{refused} (it must be copied out to be read; {self.cache_dir})"
            )
        digest = hashlib.sha1(f"{self.root.resolve()}|{parent.stamp}|{name}".encode()).hexdigest()
        target = self.cache_dir / "zips" / f"{digest[:16]}-{Path(name).name}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            try:
                with parent.zip.open(info) as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except _DAMAGED as error:
                partial.unlink(missing_ok=True)
                raise SourceError("unreadable", f"{name} cannot be copied out ({error})") from None
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
