"""Pets training runs on disk: what a run asks for (`TrainRequest`) and what it gives
(`RunResult`), the seeded validation split every run is scored on, and each run's folder
beside the store: `config.json`, `results.json`, `predictions.npz` and, for the CNNs,
`checkpoint.pt` (listing, finding, reopening one to resume, reading its predictions).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.jobs import JobError
from core.pets.labelstore import LabelStore
from core.pets.metrics import (
    CLIP,
)

MODES = {
    "features": "a logistic-regression head on the scan's cached embeddings",
    "finetune": "a pretrained backbone fine-tuned end to end",
    "scratch": "a small CNN trained from scratch (no downloaded weights)",
    "classic": "colour histogram + HOG features with a classic classifier",
}


@dataclass(frozen=True)
class TrainRequest:
    mode: str
    device: str | None = None
    epochs: int = 5
    lr: float | None = None  # None: the mode's default
    batch_size: int = 32
    image_size: int | None = None  # None: 128 from scratch, 224 fine-tuning
    backbone: str = "efficientnet_lite0"  # finetune (installed: no download)
    weights: str = "imagenet"  # finetune: "imagenet" or "random"
    freeze_epochs: int = 1  # finetune: epochs that train the new head only
    gradual: bool = False  # finetune: then unfreeze one backbone stage per epoch
    models: tuple[str, ...] = ()  # features: scan models to concatenate (default: latest)
    classic_model: str = "svm"
    folds: int = 1  # features: average the heads of k folds (1: one head on everything)
    val_fraction: float = 0.2
    seed: int = 0
    tta: bool = True  # average with the mirror image when predicting (CNNs)
    workers: int = 0
    predict_test: bool = True
    without_flagged: bool = False  # leave the flagged images out of training (not validation)
    note: str = ""


@dataclass(frozen=True)
class RunResult:
    id: str
    mode: str
    request: dict
    evaluation: dict
    temperature: float
    calibrated_log_loss: float
    placement: str
    counts: dict  # train, val, test
    seconds: float
    created: float
    reliability: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what people should know about the run
    imported_weights: str = ""  # fine-tuned from this imported, unpublished weights file

    @property
    def title(self) -> str:
        extra = {
            "features": "+".join(self.request.get("models", ())) or "features",
            "finetune": self.request.get("backbone", ""),
            "scratch": f"{self.request.get('image_size')} px",
            "classic": self.request.get("classic_model", ""),
        }.get(self.mode, "")
        if self.mode == "features" and self.request.get("folds", 1) > 1:
            extra += f", {self.request['folds']}-fold"
        cleaned = ", flagged left out" if self.request.get("without_flagged") else ""
        imported = ", imported weights" if self.imported_weights else ""
        return f"{self.mode} ({extra}{imported}{cleaned})"

    def describe(self) -> str:
        e = self.evaluation
        auc = f", ROC AUC {e['auc']:.4f}" if e.get("auc") is not None else ""
        return (
            f"{self.title}: validation log loss {e['log_loss_clipped']:.4f} clipped "
            f"({e['log_loss']:.4f} plain), accuracy {e['accuracy']:.2%}{auc} on "
            f"{e['count']:,} images; {self.placement}"
        ) + "".join(f"\n{note}" for note in self.notes)


def runs_folder(store: LabelStore) -> Path:
    return store.path.parent / f"{store.path.stem}-runs"


def split(store: LabelStore, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): the effective, readable train images, split with
    stratification by label and a seed, so every run is scored on the same images."""
    from sklearn.model_selection import train_test_split

    rows = store.effective_rows()
    rows = rows[~store.unreadable[rows]]
    labels = store.label[rows]
    counts = [int(np.sum(labels == c)) for c in (1, 2)]
    if min(counts) < 2:
        raise JobError(
            f"Training needs at least two cats and two dogs; the effective labels give "
            f"{counts[0]} cats and {counts[1]} dogs."
        )
    train_rows, val_rows = train_test_split(
        rows, test_size=val_fraction, stratify=labels, random_state=seed
    )
    return np.sort(train_rows), np.sort(val_rows)


def targets(store: LabelStore, rows: np.ndarray) -> np.ndarray:
    """1 for a dog, 0 for a cat (effective labels)."""
    return (store.label[rows] == 2).astype(np.int64)


def test_rows(store: LabelStore) -> np.ndarray:
    return np.flatnonzero((store.split == 1) & ~store.unreadable)


#: The per-image validation loss of the latest run, a store score the grid sorts by.
LOSS_SCORE = "validation_loss"


def record_losses(store: LabelStore, rows: np.ndarray, y: np.ndarray, p: np.ndarray) -> None:
    """Store each validation image's clipped log loss (replacing an earlier run's), so the
    grid can show the worst first and the user can relabel from there."""
    p = np.clip(p, *CLIP)
    losses = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    stale = np.flatnonzero(~np.isnan(store.scores(LOSS_SCORE)))
    store.clear_scores((LOSS_SCORE,), stale)
    store.set_scores(LOSS_SCORE, rows, losses)


def reopen(store: LabelStore, folder: Path) -> tuple[TrainRequest, np.ndarray, np.ndarray, int]:
    """An unfinished run's request and split, checked against the store as it is now."""
    try:
        config = json.loads((folder / "config.json").read_text())
        with np.load(folder / "split.npz", allow_pickle=False) as split_file:
            train_ids, val_ids = split_file["train_ids"], split_file["val_ids"]
            dropped = int(split_file["dropped"])
    except (OSError, ValueError, KeyError) as error:
        raise JobError(f"{folder.name} is not a run that can be resumed: {error}") from error
    if (folder / "results.json").exists():
        raise JobError(f"Run {folder.name} has finished already.")
    config["models"] = tuple(config.get("models", ()))
    request = TrainRequest(**config)
    usable = set(store.effective_rows().tolist())
    rows = []
    for ids in (train_ids, val_ids):
        found = [store.row_of.get(int(i)) for i in ids]
        if any(r is None or r not in usable for r in found):
            raise JobError(
                f"Run {folder.name} cannot resume: images it trained or validated on were "
                "excluded or removed since. Start a new run."
            )
        rows.append(np.array(found, dtype=np.int64))
    return request, rows[0], rows[1], dropped


def unfinished_runs(store: LabelStore) -> list[str]:
    """Runs cancelled after at least one epoch, which can be resumed, newest first."""
    folder = runs_folder(store)
    if not folder.is_dir():
        return []
    found = [
        p.name
        for p in folder.iterdir()
        if (p / "checkpoint.pt").exists() and not (p / "results.json").exists()
    ]
    return sorted(found, reverse=True)


def list_runs(store: LabelStore) -> list[RunResult]:
    """Every finished run of the dataset, the newest first."""
    folder = runs_folder(store)
    found = []
    for path in sorted(folder.glob("*/results.json")) if folder.is_dir() else []:
        try:
            found.append(RunResult(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue  # a damaged or foreign folder is not a run
    return sorted(found, key=lambda r: r.created, reverse=True)


def find_run(store: LabelStore, run_id: str) -> RunResult:
    runs = list_runs(store)
    if not runs:
        raise JobError("This dataset has no training runs yet: train one first.")
    if run_id == "latest":
        return runs[0]
    for run in runs:
        if run.id == run_id:
            return run
    raise JobError(f"No run {run_id!r}; runs: {', '.join(r.id for r in runs[:10])}.")


def run_predictions(store: LabelStore, run: RunResult) -> dict[str, np.ndarray]:
    """A run's saved predictions (validation and test). Raises JobError when the file is
    missing, damaged, or holds Python objects (it is never unpickled)."""
    path = runs_folder(store) / run.id / "predictions.npz"
    if not path.exists():
        raise JobError(f"Run {run.id} has no predictions file ({path}).")
    return load_predictions(path)


def load_predictions(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a predictions file. Each array's header must declare no more data
    than its member holds (a damaged or hostile header would have NumPy allocate whatever
    it claims); Python objects are never loaded."""
    try:
        _check_declared_sizes(path)
        with np.load(path, allow_pickle=False) as data:
            found = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise JobError(f"There is no predictions file {path}.") from None
    except ValueError as error:
        if "pickle" in str(error):
            raise JobError(
                f"{path} was refused: it holds Python objects, which are never loaded. "
                "Train the run again."
            ) from None
        raise JobError(f"{path} is damaged ({error}); train the run again.") from None
    except (
        OSError,
        EOFError,
        KeyError,
        RuntimeError,  # an encrypted member
        zipfile.BadZipFile,
        NotImplementedError,
        zlib.error,
    ) as error:
        raise JobError(f"{path} is damaged ({error}); train the run again.") from None
    missing = {"val_ids", "val_p", "test_ids", "test_p"} - set(found)
    if missing:
        raise JobError(f"{path} lacks {', '.join(sorted(missing))}; train the run again.")
    return found


def _check_declared_sizes(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _fortran, dtype = read(member)
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > info.file_size:
                    raise ValueError(
                        f"{info.filename} declares {declared:,} bytes in {info.file_size:,}"
                    )
