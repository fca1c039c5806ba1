"""What the outlier tests scan: flat-coloured photos whose red level is a code, and a
stand-in backbone that reads the code and returns the logits the test chose for it."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import models

from core.devices import choose
from core.pets.backbones import NUM_CLASSES, Preprocess
from core.pets.imagenet import LoadedModel

#: Red levels that stand for a case; far enough apart to survive JPEG.
CODES = (20, 60, 100, 140, 180, 220)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def logits_for(classes: dict[int, float]) -> np.ndarray:
    """1,000 logits: 0 everywhere but the given classes."""
    out = np.zeros(NUM_CLASSES, dtype=np.float32)
    for index, value in classes.items():
        out[index] = value
    return out


class StandIn(nn.Module):
    """Embedding = a one-hot of the nearest code to the image's mean red level; the final
    1,000-way linear layer maps each code to the logits chosen for it."""

    def __init__(self, table: dict[int, np.ndarray]) -> None:
        super().__init__()
        self.register_buffer("centres", torch.tensor(CODES, dtype=torch.float32))
        self.fc = nn.Linear(len(CODES), NUM_CLASSES, bias=False)
        weight = np.zeros((NUM_CLASSES, len(CODES)), dtype=np.float32)
        for code, logits in table.items():
            weight[:, CODES.index(code)] = logits
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = (x[:, 0].float().mean(dim=(1, 2)) * STD[0] + MEAN[0]) * 255
        nearest = torch.argmin((red[:, None] - self.centres[None]).abs(), dim=1)
        return self.fc(nn.functional.one_hot(nearest, len(CODES)).float())


def stand_in(table: dict[int, np.ndarray], key: str = "stand-in") -> LoadedModel:
    return LoadedModel(key, StandIn(table), Preprocess(40, 32, MEAN, STD), choose("cpu"))


def write_coded(path: Path, code: int, size: tuple[int, int] = (80, 60)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (code, 90, 90)).save(path, quality=95)


def make_coded_dataset(root: Path, layout: dict[str, int]) -> Path:
    """train/ and test/ files named in `layout` (e.g. 'train/cat.0.jpg'), each flat in its
    code's colour."""
    for name, code in layout.items():
        write_coded(root / name, code)
    (root / "test").mkdir(parents=True, exist_ok=True)
    return root


def named_by_hash(path: Path, stem: str) -> Path:
    """Rename `path` the torchvision way: `<stem>-<first 8 hex of its sha256>.pth`."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    target = path.with_name(f"{stem}-{digest}.pth")
    path.rename(target)
    return target


def random_weights(folder: Path, arch: str = "mobilenet_v3_small", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "weights.pth"
    torch.save(models.get_model(arch, weights=None).state_dict(), path)
    return named_by_hash(path, arch)


def gate_after_first_batch(monkeypatch) -> threading.Event:
    """Make the scan's model wait after its first batch until the test sets the returned
    event, so a cancel or a switch of dataset lands mid-scan every time."""
    from core.pets.imagenet import LoadedModel

    gate, calls = threading.Event(), []
    real_run = LoadedModel.run

    def gated_run(self, images):
        calls.append(len(images))
        if len(calls) == 2:
            gate.wait(30)
        return real_run(self, images)

    monkeypatch.setattr(LoadedModel, "run", gated_run)
    return gate
