"""The formula training data: images drawn on the fly (augmented, then preprocessed as the
model reads them), labelled folders mixed in, batches cut from width-sorted pools, the
fixed validation set, and the DataLoader that serves them to the loop in `training`."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from core.formula import augment as augmentation
from core.formula import preprocess, synth
from core.formula.alphabet import encode
from core.formula.dataset import Item, read_folder, split
from core.formula.generate import GenerateConfig, make_one
from core.formula.train_config import TrainConfig
from core.images import ImageProblem, read_image
from core.jobs import CancelToken, drive

_VALIDATION_SEED_OFFSET = 1_000_003


def model_input(image: np.ndarray, height: int) -> np.ndarray:
    """An RGB or gray image as the model reads it: float32 (height, W), ink 1, paper 0."""
    return 1.0 - preprocess.for_model(image, height=height)


class TrainTransform:
    """Augment (seeded by the item's index), then preprocess for the model."""

    def __init__(self, height: int, strength: float, seed: int) -> None:
        self.height, self.strength, self.seed = height, strength, seed

    def __call__(self, image: np.ndarray, index: int) -> np.ndarray:
        if self.strength > 0:
            rng = np.random.default_rng([self.seed, index])
            image = augmentation.augment(image, rng, self.strength)
        return model_input(image, self.height)


class MixedStream(IterableDataset):
    """The synthetic stream, with a share of items drawn from labelled folders."""

    def __init__(
        self, synthetic: SyntheticStream, folder: FolderDataset | None, share: float, seed: int
    ) -> None:
        self.synthetic, self.folder, self.share, self.seed = synthetic, folder, share, seed

    def __iter__(self) -> Iterator[tuple[np.ndarray, torch.Tensor, str]]:
        stream = iter(self.synthetic)
        if self.folder is None or self.share <= 0:
            yield from stream
            return
        info = torch.utils.data.get_worker_info()
        rng = random.Random(f"{self.seed}:{info.id if info else 0}")
        while True:
            if rng.random() < self.share:
                yield self.folder[rng.randrange(len(self.folder))]
            else:
                yield next(stream)


def collate(batch: Sequence[tuple[np.ndarray, torch.Tensor, str]]) -> dict[str, Any]:
    """Pad images to the widest (with paper, 0) and concatenate the targets for CTC."""
    height = batch[0][0].shape[0]
    widths = torch.tensor([image.shape[1] for image, _, _ in batch])
    images = torch.zeros(len(batch), 1, height, int(widths.max()))
    for i, (image, _, _) in enumerate(batch):
        images[i, 0, :, : image.shape[1]] = torch.from_numpy(image)
    targets = [target for _, target, _ in batch]
    return {
        "images": images,
        "widths": widths,
        "targets": torch.cat(targets),
        "target_lengths": torch.tensor([len(t) for t in targets]),
        "texts": [text for _, _, text in batch],
    }


class WidthBuckets(IterableDataset):
    """Collated batches of similar widths.

    The stream is read in pools of `bucket` batches; each pool is sorted by image width, cut
    into batches and given out in an order seeded by the pool's number. Sorting lowers the
    padding, the convolutions' wasted work, by about a third for mixed formulas. A run that
    has already trained on `seen` items reads the stream from `stream_start(seen)`, the
    start of the pool it stopped in, and skips that pool's batches it had trained on.
    """

    def __init__(
        self, stream: Iterable, batch_size: int, bucket: int, seed: int, seen: int = 0
    ) -> None:
        self.stream, self.batch_size, self.bucket, self.seed = stream, batch_size, bucket, seed
        pool = batch_size * bucket
        self.first_pool, self.skip = seen // pool, (seen % pool) // batch_size

    @staticmethod
    def stream_start(seen: int, batch_size: int, bucket: int) -> int:
        """The stream index where the pool holding item `seen` starts."""
        return seen - seen % (batch_size * bucket)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        items = iter(self.stream)
        info = torch.utils.data.get_worker_info()
        worker = info.id if info else 0
        skip = self.skip if worker == 0 else 0
        for number in itertools.count(self.first_pool):
            pool = [next(items) for _ in range(self.batch_size * self.bucket)]
            pool.sort(key=lambda item: item[0].shape[1])
            batches = [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
            random.Random(f"{self.seed}:{worker}:{number}").shuffle(batches)
            for batch in batches[skip:]:
                yield collate(batch)
            skip = 0


def validation_set(config: TrainConfig) -> list[tuple[np.ndarray, torch.Tensor, str]]:
    """A fixed synthetic set from a seed training never uses."""
    gen = GenerateConfig(1, config.style, config.form, config.seed + _VALIDATION_SEED_OFFSET)
    items = []
    for index in range(config.val_size):
        sample, _, image = make_one(gen, index)
        items.append(
            (
                model_input(image, config.model.height),
                torch.tensor(encode(sample.text)),
                sample.text,
            )
        )
    return items


def make_loader(config: TrainConfig, rank: int, seen: int, token: CancelToken) -> DataLoader:
    """The batches of process `rank` for a run that has trained on `seen` items: the
    synthetic stream (continued where it stopped) and the configured folders' training
    part, in width-sorted batches."""
    folder = None
    if config.data:
        items: list[Item] = []
        for directory in config.data:
            report = drive(read_folder(directory, token), token)
            items.extend(split(report.items, (0.9, 0.1), seed=config.seed)[0])
        # a module-level function: a spawned data worker must be able to unpickle it
        folder = FolderDataset(items, partial(model_input, height=config.model.height))
    transform = TrainTransform(config.model.height, config.augment, config.seed + rank)
    synthetic = SyntheticStream(
        seed=config.seed + 7919 * rank,
        form=config.form,
        style=config.style,
        transform=transform,
        start=WidthBuckets.stream_start(seen, config.batch_size, config.bucket),
        weights=dict(config.style_weights) or None,
    )
    return DataLoader(
        WidthBuckets(
            MixedStream(synthetic, folder, config.data_share, config.seed + rank),
            config.batch_size,
            config.bucket,
            config.seed + rank,
            seen,
        ),
        batch_size=None,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        prefetch_factor=4 if config.workers else None,
        worker_init_fn=_worker_init,
        multiprocessing_context="spawn" if config.workers else None,
        # its own generator: iter(loader) must not draw from the global RNG, or a
        # resumed run's dropout would differ from an uninterrupted one
        generator=torch.Generator().manual_seed(config.seed + rank),
    )


def _worker_init(worker_id: int) -> None:
    """One thread per data worker: the cores belong to training. (Each item seeds its own
    randomness from its index, so workers need no seeding of their own.)"""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


Transform = Callable[[np.ndarray], Any]


#: A transform of the synthetic stream also gets the item's index, to seed its randomness.
IndexedTransform = Callable[[np.ndarray, int], Any]


class FolderDataset(Dataset):
    """Images and targets of a folder's items. An image that cannot be decoded is replaced
    by the next good one and recorded in `failures`, so one bad file cannot stop training."""

    def __init__(self, items: Sequence[Item], transform: Transform | None = None) -> None:
        self.items = list(items)
        self.transform = transform
        self.failures: dict[Path, str] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor, str]:
        for offset in range(len(self.items)):
            item = self.items[(index + offset) % len(self.items)]
            try:
                image = read_image(item.path)
            except ImageProblem as problem:
                self.failures[item.path] = problem.detail
                continue
            image = self.transform(image) if self.transform else image
            return image, torch.tensor(encode(item.text)), item.text
        raise RuntimeError("no image of this dataset can be decoded")


class SyntheticStream(IterableDataset):
    """An endless stream of (image, target, text) drawn on the fly.

    Worker w of W draws items w, w + W, w + 2W, … of the run seeded with `seed`, so the
    stream is reproducible and no two workers repeat each other.
    """

    def __init__(
        self,
        seed: int = 0,
        form: str = "mixed",
        style: str = "mixed",
        transform: IndexedTransform | None = None,
        height: int = synth.HEIGHT,
        start: int = 0,
        weights: dict[str, float] | None = None,
    ) -> None:
        from core.formula.generate import GenerateConfig

        mix = weights or dict(synth.DEFAULT_WEIGHTS)
        self.config = GenerateConfig(
            1, style=style, form=form, seed=seed, height=height, weights=mix
        )
        self.transform = transform
        self.start = start

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor, str]]:
        from core.formula.generate import make_one

        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        index = self.start + worker
        while True:
            item, _, image = make_one(self.config, index)
            image = self.transform(image, index) if self.transform else image
            yield image, torch.tensor(encode(item.text)), item.text
            index += workers
