"""The weights cache: torchvision's files are recognised by name and checked by hash."""

import hashlib
from pathlib import Path

import pytest
import torch
from torchvision import models

from core import weights
from core.jobs import Cancelled, CancelToken, drive
from core.paths import weights_cache_dir


def _save_named(directory: Path, stem: str, model: torch.nn.Module) -> Path:
    """Save a state dict as torchvision names its files: stem-<sha256[:8]>.pth."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / "tmp.pth"
    torch.save(model.state_dict(), temporary)
    digest = hashlib.sha256(temporary.read_bytes()).hexdigest()
    path = directory / f"{stem}-{digest[:8]}.pth"
    temporary.rename(path)
    return path


def test_torchvision_names_are_known():
    known = weights.torchvision_weights_by_file()
    resnet = models.ResNet50_Weights.IMAGENET1K_V2
    assert known[resnet.url.rsplit("/", 1)[-1]] == "ResNet50_Weights.IMAGENET1K_V2"


def test_cache_follows_torch_home(isolated_dirs):
    assert weights_cache_dir() == isolated_dirs / "torch" / "hub" / "checkpoints"
    assert weights.cached_weights() == []


def test_verify_cache_finds_good_and_damaged_files():
    cache = weights_cache_dir()
    good = _save_named(cache, "tiny", torch.nn.Linear(4, 2))
    damaged = _save_named(cache, "other", torch.nn.Linear(3, 3))
    damaged.write_bytes(damaged.read_bytes()[:-10])  # an interrupted download
    (cache / "mine.pth").write_bytes(b"no hash in this name")
    checks = drive(weights.verify_cache(CancelToken()), CancelToken())
    by_name = {c.path.name: c for c in checks}
    assert by_name[good.name].ok
    assert not by_name[damaged.name].ok and "does not match" in by_name[damaged.name].reason
    assert by_name["mine.pth"].ok and "no hash" in by_name["mine.pth"].reason


def test_verify_cache_can_be_cancelled():
    cache = weights_cache_dir()
    cache.mkdir(parents=True)
    (cache / "big-00000000.pth").write_bytes(b"\0" * (3 << 20))
    token = CancelToken()
    with pytest.raises(Cancelled):
        drive(weights.verify_cache(token), token, lambda p: token.cancel() if p.done else None)
