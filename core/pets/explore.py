"""The first look at the data: class balance and the distribution of image sizes and aspect
ratios, from what decoding recorded in the label store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from core.jobs import CancelToken, Progress
from core.pets.labelstore import LabelStore
from core.pets.sources import Source
from core.pets.thumbnails import check_images


@dataclass(frozen=True)
class DatasetStats:
    cats: int
    dogs: int
    test: int
    excluded: int
    unreadable: int
    widths: np.ndarray  # of every decoded, readable image
    heights: np.ndarray
    missing: int  # images not decoded yet (no size known)

    @property
    def aspects(self) -> np.ndarray:
        return self.widths / np.maximum(self.heights, 1)

    def summary(self) -> str:
        if not self.widths.size:
            return "No image sizes known yet."
        return (
            f"{self.widths.size:,} images: width median {np.median(self.widths):.0f} px "
            f"({self.widths.min()}–{self.widths.max()}), height median "
            f"{np.median(self.heights):.0f} px ({self.heights.min()}–{self.heights.max()}), "
            f"aspect ratio median {np.median(self.aspects):.2f}"
        )


def dataset_stats(store: LabelStore) -> DatasetStats:
    counts = store.counts()
    known = (store.width > 0) & ~store.unreadable
    return DatasetStats(
        cats=counts["cats"],
        dogs=counts["dogs"],
        test=counts["test"],
        excluded=counts["excluded"],
        unreadable=counts["unreadable"],
        widths=store.width[known].astype(np.int64),
        heights=store.height[known].astype(np.int64),
        missing=int(np.sum((store.width == 0) & ~store.unreadable)),
    )


def decode(store: LabelStore, token: CancelToken, only_missing: bool = True) -> Iterator[Progress]:
    """Job: decode the store's images (by default only those never decoded: thumbnails, a
    scan or an earlier pass record what they find), recording their sizes and problems."""
    rows = np.flatnonzero((store.width == 0) & ~store.unreadable) if only_missing else None
    if rows is None:
        rows = np.arange(len(store))
    if not len(rows):
        return
    source = Source(store.root)
    paths = [store.paths[r] for r in rows]

    def record(batch: list) -> None:
        store.record_facts([(store.row_for_path(t.path), t.stamp, t.facts) for t in batch])

    try:
        yield from check_images(source, paths, token, on_batch=record)
    finally:
        source.close()


def explore(store: LabelStore, token: CancelToken, only_missing: bool = True) -> Iterator[Progress]:
    """Job: decode the images whose size is not known yet (recording sizes and problems in
    the store), then return the DatasetStats."""
    yield from decode(store, token, only_missing)
    return dataset_stats(store)
