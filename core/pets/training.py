"""Training runs for cats against dogs, four ways side by side: a logistic-regression head on
cached backbone embeddings (`features`), a fine-tuned torchvision backbone (`finetune`), a
small CNN from scratch (`scratch`), and hand-made features with a classic classifier
(`classic`).

Every run trains on the label store's effective labels (file label, overridden by the
user's edits, minus exclusions and unreadable files), is scored on the same seeded,
stratified validation split, predicts the test images, and is kept in a folder of its own
beside the store: `config.json`, `results.json`, `predictions.npz` and, for the CNNs,
`checkpoint.pt`.
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from core import devices
from core.jobs import CancelToken, JobError, Progress
from core.pets import classic, cnn
from core.pets.features import FeatureCache, features_location
from core.pets.labelstore import LabelStore
from core.pets.metrics import (
    CLIP,
    apply_temperature,
    evaluate,
    fit_temperature,
    log_loss,
    placement,
    reliability,
)
from core.pets.sources import Source

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


def train_run(
    store: LabelStore, request: TrainRequest, token: CancelToken, resume: str | None = None
) -> Iterator[Progress]:
    """Job: one training run end to end; returns its RunResult (also written to its folder).

    A CNN run that is cancelled after at least one epoch keeps its folder (configuration,
    split and checkpoint): `resume=<its id>` continues it on the same images. Any other
    failed or cancelled run leaves nothing behind."""
    started, created = time.perf_counter(), time.time()
    store.refresh()  # edits made in another window or process count
    if resume is not None or request.mode != "features":
        # the CNNs and the classic features decode every image: find the ones that cannot
        # be decoded before the split, so they are left out instead of stopping training
        from core.pets.explore import decode

        yield from decode(store, token)
    if resume is not None:
        folder = runs_folder(store) / resume
        request, train_rows, val_rows, dropped = _reopen(store, folder)
    else:
        if request.mode not in MODES:
            raise JobError(f"Unknown mode {request.mode!r}; choose one of {', '.join(MODES)}.")
        train_rows, val_rows = split(store, request.val_fraction, request.seed)
        dropped = 0
        if request.without_flagged:
            flagged = flagged_rows(store)
            kept = train_rows[~np.isin(train_rows, flagged)]
            dropped = len(train_rows) - len(kept)
            _check_enough_left(store, kept, dropped)
            train_rows = kept
        run_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(created)) + f"-{request.mode}"
        folder = runs_folder(store) / run_id
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = runs_folder(store) / f"{run_id}-{suffix}"
        folder.mkdir(parents=True)
        wanted = np.concatenate([train_rows, val_rows])
        if request.predict_test:
            wanted = np.concatenate([wanted, test_rows(store)])
        request = _resolved(store, request, wanted)
        (folder / "config.json").write_text(json.dumps(asdict(request), indent=2))
        np.savez(
            folder / "split.npz",
            train_ids=store.ids[train_rows],
            val_ids=store.ids[val_rows],
            dropped=np.array(dropped),
        )
    # what the run's result says about how it was made (the request is known now, also
    # for a resumed run)
    notes, imported = [], ""
    if request.mode == "finetune" and request.weights == "imagenet":
        from core.pets import backbones, imagenet

        state = imagenet.weights_state(backbones.backbone(request.backbone))
        if state.path is not None and not state.published:
            imported = state.path.name
            notes.append(
                f"Fine-tuned from {state.path.name}, imported weights that are not the "
                "published ones: results will differ from the published model's."
            )
    if request.mode != "features" and store.unreadable.any():
        unreadable = np.flatnonzero(store.unreadable)
        names = ", ".join(store.paths[r] for r in unreadable[:5])
        more = f" and {len(unreadable) - 5:,} more" if len(unreadable) > 5 else ""
        notes.append(f"Left out {len(unreadable):,} unreadable image(s): {names}{more}.")
        yield Progress(0, None, notes[-1], milestone=True)
    tests = test_rows(store) if request.predict_test else np.zeros(0, dtype=np.int64)
    yield Progress(
        0, None, f"{MODES[request.mode]}: {len(train_rows):,} train, {len(val_rows):,} validation"
    )
    trainer = {"features": _features, "classic": _classic}.get(request.mode, _cnn)
    try:
        val_p, test_p = yield from trainer(
            store, request, train_rows, val_rows, tests, folder, token
        )
    except BaseException:
        if not (folder / "checkpoint.pt").exists():  # nothing worth resuming
            shutil.rmtree(folder, ignore_errors=True)
        raise
    y_val = targets(store, val_rows)
    evaluation = evaluate(y_val, val_p)
    temperature = fit_temperature(y_val, val_p)
    result = RunResult(
        id=folder.name,
        mode=request.mode,
        request=json.loads(json.dumps(asdict(request))),  # as list_runs will read it
        evaluation=evaluation.to_dict(),
        temperature=temperature,
        calibrated_log_loss=log_loss(y_val, apply_temperature(val_p, temperature)),
        placement=placement(evaluation.log_loss_clipped).describe(),
        counts={
            "train": len(train_rows),
            "val": len(val_rows),
            "test": len(tests),
            "left_out_flagged": dropped,
        },
        seconds=time.perf_counter() - started,
        created=created,
        reliability=reliability(y_val, val_p),
        notes=notes,
        imported_weights=imported,
    )
    np.savez(
        folder / "predictions.npz",
        val_ids=store.ids[val_rows],
        val_y=y_val,
        val_p=val_p,
        test_ids=store.ids[tests],
        test_p=test_p,
    )
    (folder / "results.json").write_text(json.dumps(asdict(result), indent=2))
    record_losses(store, val_rows, y_val, val_p)
    return result


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


def flagged_rows(store: LabelStore) -> np.ndarray:
    """The images that cleaning would leave out: flagged by the user (F), by the latest
    scan's default flags (outlier, both, disagrees), or as likely mislabelled."""
    from core.pets.label_issues import ISSUE_SCORE
    from core.pets.outliers import FlagSettings, compute_flags, latest_model

    mask = store.flagged.copy()
    mask |= store.scores(ISSUE_SCORE) == 1
    model = latest_model(store)
    if model is not None:
        flags = compute_flags(store.scan_table(model), store.label, store.split, FlagSettings())
        mask |= flags.outlier | flags.both | flags.disagrees
    return np.flatnonzero(mask)


def _check_enough_left(store: LabelStore, kept: np.ndarray, dropped: int) -> None:
    """Cleaning must leave cats and dogs to train on; say why not when it does not."""
    cats = int(np.sum(store.label[kept] == 1))
    dogs = int(np.sum(store.label[kept] == 2))
    if min(cats, dogs) >= 2:
        return
    raise JobError(
        f"Leaving out the {dropped:,} flagged training images would leave {cats:,} cats and "
        f"{dogs:,} dogs to train on, too few to compare. When a scan flags nearly every "
        "image, its model is not doing its job (weights that are not the published ones?): "
        "scan again with an installed model, or clear the flags."
    )


@dataclass(frozen=True)
class CleaningComparison:
    """The same request trained with and without the flagged images, on the same split."""

    with_flagged: RunResult
    without_flagged: RunResult

    def describe(self) -> str:
        a = self.with_flagged.evaluation["log_loss_clipped"]
        b = self.without_flagged.evaluation["log_loss_clipped"]
        left_out = self.without_flagged.counts.get("left_out_flagged", 0)
        verdict = "helped" if b < a else "did not help"
        return (
            f"Cleaning {verdict}: validation log loss {a:.4f} with the flagged images, "
            f"{b:.4f} with {left_out:,} of them left out of training (same validation split)."
        )


def compare_cleaning(
    store: LabelStore, request: TrainRequest, token: CancelToken
) -> Iterator[Progress]:
    """Job: train `request` twice — as it is, then with the flagged train images left out —
    and return a CleaningComparison."""
    flagged = flagged_rows(store)
    if not len(flagged):
        raise JobError(
            "Nothing is flagged yet: scan the dataset, or flag images with F, then compare."
        )
    train_rows, _val_rows = split(store, request.val_fraction, request.seed)
    kept = train_rows[~np.isin(train_rows, flagged)]
    _check_enough_left(store, kept, len(train_rows) - len(kept))
    first = yield from train_run(store, replace(request, without_flagged=False), token)
    second = yield from train_run(store, replace(request, without_flagged=True), token)
    return CleaningComparison(first, second)


def default_feature_models(store: LabelStore, rows: np.ndarray) -> tuple[str, ...]:
    """The scans features mode concatenates by default: the latest scan, and with it every
    other scan by an installed model that has embeddings for all of `rows` (the embeddings
    of EfficientNet-Lite0, 1 and 2 together score clearly better than any one of them:
    docs/benchmarks.md). Empty when the dataset was never scanned."""
    from core.pets.backbones import BACKBONES

    scans = store.scans()
    if not scans:
        return ()
    chosen = [scans[0].model]
    cache = FeatureCache(features_location(store.root))
    try:
        wanted = set(store.ids[rows].tolist())
        for record in scans[1:]:
            b = BACKBONES.get(record.backbone)
            if b is not None and b.installed and wanted <= cache.ids(record.model):
                chosen.append(record.model)
    finally:
        cache.close()
    return tuple(sorted(chosen))


def _resolved(
    store: LabelStore, request: TrainRequest, rows: np.ndarray | None = None
) -> TrainRequest:
    """The request with the mode's defaults filled in, as it is recorded."""
    if request.mode == "features" and not request.models:
        models = default_feature_models(store, store.effective_rows() if rows is None else rows)
        if not models:
            raise JobError("Features mode needs embeddings: scan the dataset first (Scan tab).")
        request = replace(request, models=models)
    if request.mode in ("scratch", "finetune"):
        lr = request.lr or (1e-3 if request.mode == "scratch" else 3e-4)
        size = request.image_size or (128 if request.mode == "scratch" else 224)
        request = replace(request, lr=lr, image_size=size)
    if request.mode == "classic" and request.classic_model not in classic.MODELS:
        raise JobError(
            f"Unknown classic model {request.classic_model!r}; "
            f"choose one of {', '.join(classic.MODELS)}."
        )
    return request


def _embeddings(
    store: LabelStore, cache: FeatureCache, models: tuple[str, ...], rows
) -> np.ndarray:
    parts = []
    for model in models:
        ids, vectors = cache.get(model, store.ids[rows])
        if len(ids) != len(rows):
            raise JobError(
                f"{len(rows) - len(ids):,} of {len(rows):,} images have no {model} embeddings: "
                "scan them first (Scan tab, or labelscope pets scan)."
            )
        parts.append(vectors)
    return np.concatenate(parts, axis=1)


def _features(store, request, train_rows, val_rows, tests, folder, token):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cache = FeatureCache(features_location(store.root))
    try:
        x_train = _embeddings(store, cache, request.models, train_rows)
        x_val = _embeddings(store, cache, request.models, val_rows)
        x_test = _embeddings(store, cache, request.models, tests) if len(tests) else None
    finally:
        cache.close()
    from sklearn.model_selection import StratifiedKFold

    y = targets(store, train_rows)
    folds = max(1, min(request.folds, int(np.bincount(y, minlength=2).min())))
    if folds > 1:  # k heads, each on k-1 folds; their predictions averaged
        splitter = StratifiedKFold(folds, shuffle=True, random_state=request.seed)
        subsets = [part for part, _held_out in splitter.split(x_train, y)]
    else:
        subsets = [np.arange(len(y))]
    val_p, test_p = np.zeros(len(x_val)), np.zeros(0 if x_test is None else len(x_test))
    for index, subset in enumerate(subsets):
        token.raise_if_cancelled()
        yield Progress(
            index,
            len(subsets),
            f"Fitting logistic regression {index + 1} of {len(subsets)} on "
            f"{x_train.shape[1]:,} dimensions",
        )
        head = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1000))
        head.fit(x_train[subset], y[subset])
        val_p += head.predict_proba(x_val)[:, 1] / len(subsets)
        if x_test is not None:
            test_p += head.predict_proba(x_test)[:, 1] / len(subsets)
    yield Progress(len(subsets), len(subsets), "Head trained")
    return val_p, test_p


def _classic(store, request, train_rows, val_rows, tests, folder, token):
    source = Source(store.root)
    try:
        everything = np.concatenate([train_rows, val_rows, tests])
        found = yield from classic.features(source, [store.paths[r] for r in everything], token)
    finally:
        source.close()
    n_train, n_val = len(train_rows), len(val_rows)
    model = classic.make_model(request.classic_model, request.seed, n_train)
    yield Progress(0, 1, f"Fitting the {classic.MODELS[request.classic_model]}")
    model.fit(found[:n_train], targets(store, train_rows))
    yield Progress(1, 1, "Fitted")
    val_p = model.predict_proba(found[n_train : n_train + n_val])[:, 1]
    rest = found[n_train + n_val :]
    test_p = model.predict_proba(rest)[:, 1] if len(rest) else np.zeros(0)
    return val_p, test_p


def _cnn(store, request, train_rows, val_rows, tests, folder, token):
    device = devices.choose(request.device)
    config = cnn.CNNConfig(
        mode=request.mode,
        backbone=request.backbone if request.mode == "finetune" else "",
        weights=request.weights,
        image_size=request.image_size,
        epochs=request.epochs,
        batch_size=request.batch_size,
        lr=request.lr,
        freeze_epochs=request.freeze_epochs if request.mode == "finetune" else 0,
        gradual=request.gradual and request.mode == "finetune",
        seed=request.seed,
        workers=request.workers,
    )
    source = Source(store.root)
    try:

        def data(rows: np.ndarray, train: bool, labelled: bool = True) -> cnn.PetImages:
            labels = targets(store, rows) if labelled else np.zeros(len(rows))
            paths = [store.paths[r] for r in rows]
            return cnn.PetImages(source, paths, labels, config.image_size, train)

        val_data = data(val_rows, False)
        model = yield from cnn.train(
            config, data(train_rows, True), val_data, device, token, folder / "checkpoint.pt"
        )
        stats = cnn.normalisation(config)
        val_p = yield from cnn.predict(model, val_data, device, token, request.tta, stats=stats)
        test_p = np.zeros(0)
        if len(tests):
            test_data = data(tests, False, labelled=False)
            test_p = yield from cnn.predict(
                model, test_data, device, token, request.tta, stats=stats
            )
    finally:
        source.close()
    return val_p, test_p


def _reopen(store: LabelStore, folder: Path) -> tuple[TrainRequest, np.ndarray, np.ndarray, int]:
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
