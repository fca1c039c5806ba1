"""The Pets training images: decoded at the size the CNN reads, augmented (flips, crops,
colour jitter) for training, normalised as the backbone expects, with a seed per loader
worker."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from core.devices import Device
from core.images import ImageProblem
from core.jobs import JobError
from core.pets.cnn import MEAN, STD
from core.pets.image_decoding import decode_pet
from core.pets.sources import Source, SourceError


class PetImages(Dataset):
    """Images of the store decoded at a reduced scale; training crops are augmented (flip,
    random resized crop, colour jitter: nothing that changes the class)."""

    def __init__(
        self, source: Source, paths: Sequence[str], labels: np.ndarray, size: int, train: bool
    ) -> None:
        from torchvision.transforms import v2

        self.source, self.paths, self.labels = source, list(paths), labels
        self.size, self.train = size, train
        if train:
            self.transform = v2.Compose(
                [
                    v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
                    v2.RandomHorizontalFlip(),
                    v2.ColorJitter(0.2, 0.2, 0.2, 0.02),
                ]
            )
        else:
            self.transform = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> torch.Tensor:
        """uint8 (3, H, W), the shorter side at least the crop size."""
        try:
            array = decode_pet(self.source.read(self.paths[index]), min_side=self.size).image
        except (ImageProblem, SourceError, KeyError) as error:
            raise JobError(f"{self.paths[index]} cannot be read: {error}") from error
        return torch.from_numpy(np.array(array, copy=True)).permute(2, 0, 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        return self.transform(self.image(index)), float(self.labels[index])


def normalise(
    batch: torch.Tensor,
    device: Device,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    mean = torch.tensor(mean, device=device.torch).view(1, 3, 1, 1) * 255
    std = torch.tensor(std, device=device.torch).view(1, 3, 1, 1) * 255
    x = batch.to(device.torch, non_blocking=True).float()
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def augmented_samples(
    source: Source, paths: Sequence[str], size: int, per_image: int = 4, seed: int = 0
) -> list[list[np.ndarray]]:
    """What training sees: for each path, `per_image` augmented crops (uint8 H×W×3), drawn
    with the training transforms and a seed."""
    torch.manual_seed(seed)
    data = PetImages(source, paths, np.zeros(len(paths)), size, train=True)
    out = []
    for index in range(len(paths)):
        image = data.image(index)
        out.append(
            [data.transform(image).permute(1, 2, 0).contiguous().numpy() for _ in range(per_image)]
        )
    return out
