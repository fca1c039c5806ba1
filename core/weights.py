"""Pretrained weights in torch's cache: which torchvision weights are there, and whether
each file is intact (torchvision names files `<name>-<first 8 hex digits of sha256>.pth`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.jobs import CancelToken, JobError, Progress
from core.paths import weights_cache_dir

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.(?:pth|pt)$")
_CHUNK = 1 << 20


@lru_cache(maxsize=1)
def torchvision_weights_by_file() -> dict[str, str]:
    """File name → torchvision weights name, e.g. 'resnet50-11ad3fa6.pth' →
    'ResNet50_Weights.IMAGENET1K_V2', for every weights torchvision publishes."""
    from torchvision import models

    by_file: dict[str, str] = {}
    for model_name in models.list_models():
        for weights in models.get_model_weights(model_name):
            by_file.setdefault(weights.url.rsplit("/", 1)[-1], str(weights))
    return by_file


def hash_prefix(path: Path) -> str | None:
    """The sha256 prefix a torchvision-style file name carries, or None."""
    match = _HASH_IN_NAME.search(path.name)
    return match.group(1) if match else None


@dataclass(frozen=True)
class CachedWeights:
    path: Path
    size: int
    torchvision_name: str | None  # None for files torchvision does not publish


def cached_weights(cache_dir: Path | None = None) -> list[CachedWeights]:
    """The weight files in the cache, sorted by name."""
    directory = cache_dir or weights_cache_dir()
    if not directory.is_dir():
        return []
    known = torchvision_weights_by_file()
    found = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix in (".pth", ".pt"):
            found.append(CachedWeights(path, path.stat().st_size, known.get(path.name)))
    return found


@dataclass(frozen=True)
class WeightsCheck:
    path: Path
    ok: bool
    reason: str


def sha256_file(
    path: Path, token: CancelToken, progress_base: int = 0, total: int | None = None
) -> Iterator[Progress]:
    """Hash a file in chunks, yielding Progress in bytes; the digest is the return value."""
    digest = hashlib.sha256()
    done = progress_base
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            token.raise_if_cancelled()
            digest.update(chunk)
            done += len(chunk)
            yield Progress(done, total, f"Checking {path.name}")
    return digest.hexdigest()


def verify_cache(token: CancelToken, cache_dir: Path | None = None) -> Iterator[Progress]:
    """Job: check every cached weight file against the hash in its name.

    Returns a list of WeightsCheck. Files whose names carry no hash are reported, not
    failed. Raises JobError when the cache cannot be read.
    """
    directory = cache_dir or weights_cache_dir()
    try:
        files = cached_weights(directory)
    except OSError as error:
        raise JobError(f"Cannot read the weights cache {directory}: {error.strerror}") from error
    total = sum(item.size for item in files)
    results: list[WeightsCheck] = []
    done = 0
    yield Progress(0, total, f"Checking {len(files)} weight file(s) in {directory}")
    for item in files:
        expected = hash_prefix(item.path)
        try:
            digest = yield from sha256_file(item.path, token, done, total)
        except OSError as error:
            results.append(WeightsCheck(item.path, False, f"unreadable: {error.strerror}"))
            continue
        finally:
            done += item.size
        if expected is None:
            results.append(WeightsCheck(item.path, True, "no hash in the file name to check"))
        elif digest.startswith(expected):
            results.append(WeightsCheck(item.path, True, "sha256 matches the file name"))
        else:
            results.append(
                WeightsCheck(
                    item.path,
                    False,
                    f"sha256 {digest[: len(expected)]}… does not match {expected} in the name: "
                    "the file is damaged or incomplete; delete it and download again",
                )
            )
    yield Progress(total, total, "Done")
    return results
