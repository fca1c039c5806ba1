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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from core import devices
from core.jobs import CancelToken, JobError, Progress
from core.pets import classic
from core.pets.features import FeatureCache, features_location
from core.pets.labelstore import LabelStore
from core.pets.metrics import (
    apply_temperature,
    evaluate,
    fit_temperature,
    log_loss,
    placement,
    reliability,
)
from core.pets.runs import (
    MODES,
    RunResult,
    TrainRequest,
    record_losses,
    reopen,
    runs_folder,
    split,
    targets,
    test_rows,
)
from core.pets.sources import Source


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
        request, train_rows, val_rows, dropped = reopen(store, folder)
    else:
        request, train_rows, val_rows, dropped, folder = _new_run(store, request, created)
    notes, imported = _run_notes(store, request)
    if request.mode != "features" and store.unreadable.any():
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
    _save_result(store, folder, result, (val_rows, y_val, val_p), (tests, test_p))
    return result


def _new_run(
    store: LabelStore, request: TrainRequest, created: float
) -> tuple[TrainRequest, np.ndarray, np.ndarray, int, Path]:
    """A new run's split (without the flagged images where asked), its folder, and its
    request with every default resolved, written there (config.json, split.npz)."""
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
    return request, train_rows, val_rows, dropped, folder


def _run_notes(store: LabelStore, request: TrainRequest) -> tuple[list[str], str]:
    """What the run's result says about how it was made (imported weights, images left
    out), and the imported weights file's name, if any."""
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
    return notes, imported


def _save_result(
    store: LabelStore,
    folder: Path,
    result: RunResult,
    validation: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
) -> None:
    """The run's predictions and result in its folder; each validation image's loss in the
    store (the grid sorts by it)."""
    val_rows, y_val, val_p = validation
    tests, test_p = test
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
    from core.pets import cnn, cnn_training, train_data  # torch: only to train a CNN

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

        def data(rows: np.ndarray, train: bool, labelled: bool = True) -> train_data.PetImages:
            labels = targets(store, rows) if labelled else np.zeros(len(rows))
            paths = [store.paths[r] for r in rows]
            return train_data.PetImages(source, paths, labels, config.image_size, train)

        val_data = data(val_rows, False)
        model = yield from cnn_training.train(
            config, data(train_rows, True), val_data, device, token, folder / "checkpoint.pt"
        )
        stats = cnn.normalisation(config)
        val_p = yield from cnn_training.predict(
            model, val_data, device, token, request.tta, stats=stats
        )
        test_p = np.zeros(0)
        if len(tests):
            test_data = data(tests, False, labelled=False)
            test_p = yield from cnn_training.predict(
                model, test_data, device, token, request.tta, stats=stats
            )
    finally:
        source.close()
    return val_p, test_p
