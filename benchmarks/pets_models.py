"""The installed ImageNet models on real photos: how well each one's flags find the known
outliers, how well confident learning finds flipped labels (against cleanlab on the same
out-of-fold probabilities), and what training on their embeddings and fine-tuning reach.

    python -m benchmarks.pets_models [--data ../shared/data/dogs_vs_cats] [--device cpu]
                                     [--finetune-epochs 3] [--flip 0.05] [--seed 0]

The dataset is built in a temporary folder of links: the 1,000 real train images and the 24
known outliers (4 at full size, 20 resized to 200 px) as train images under their file
labels. Every model scans it with the app's own scan job (train images only); then:

1. Flags: for N = 1…10, how many of the 24 outliers the top-N filter flags, and how many of
   the 1,000 normal images; the *both* and *disagrees* flags at several thresholds; and, at
   the defaults, which outliers no flag catches.
2. Label issues: a seeded `--flip` fraction of the 1,000 normal labels is flipped (the
   outliers left out), then the app's confident learning and cleanlab's `find_label_issues`
   (the `bench` extra) run on the same 5-fold out-of-fold probabilities; precision and
   recall of each, and of the first k images by label quality (k = flips), averaged over
   `--flip-seeds` seeds.
3. Training, on one seeded stratified split for every row: features mode per model and
   concatenated, with and without the flagged images; fine-tuning the CPU default for
   `--finetune-epochs` (one head-only epoch, then gradual unfreezing).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import machine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dogs_vs_cats"
BOTH = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35)
DISAGREE = (0.3, 0.4, 0.5, 0.6)


def build_dataset(data: Path, folder: Path) -> tuple[Path, set[str]]:
    """train/ of symbolic links to the real train images and the known outliers; returns
    the root and the outliers' file names."""
    train = folder / "train"
    train.mkdir(parents=True)
    outliers = set()
    for path in sorted((data / "train").glob("*.jpg")):
        (train / path.name).symlink_to(path.resolve())
    for path in sorted((data / "outliers").rglob("*.jpg")):
        (train / path.name).symlink_to(path.resolve())
        outliers.add(path.name)
    (folder / "test").mkdir()
    return folder, outliers


def flag_tables(store, models: dict[str, str], outliers: np.ndarray) -> list[str]:
    from core.pets.outliers import FlagSettings, compute_flags

    normal = ~outliers
    lines = [
        "#### Top-N filter: outliers caught (of 24) / normal images flagged (of 1,000)",
        "",
        "| model | " + " | ".join(f"N={n}" for n in range(1, 11)) + " |",
        "| --- | " + " | ".join("---" for _ in range(10)) + " |",
    ]
    for title, key in models.items():
        table = store.scan_table(key)
        cells = []
        for n in range(1, 11):
            flags = compute_flags(table, store.label, store.split, FlagSettings(top_n=n))
            cells.append(
                f"{int(flags.outlier[outliers].sum())} / {int(flags.outlier[normal].sum())}"
            )
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "#### *Both* (cat and dog mass each ≥ t) and *disagrees* (other class ≥ t and more than "
        "its own): outliers / normal images flagged",
        "",
        "| model | "
        + " | ".join(f"both {t:.2f}" for t in BOTH)
        + " | "
        + " | ".join(f"disagrees {t:.1f}" for t in DISAGREE)
        + " |",
        "| --- | " + " | ".join("---" for _ in BOTH + DISAGREE) + " |",
    ]
    for title, key in models.items():
        table = store.scan_table(key)
        cells = []
        for t in BOTH:
            f = compute_flags(table, store.label, store.split, FlagSettings(both_mass=t))
            cells.append(f"{int(f.both[outliers].sum())} / {int(f.both[normal].sum())}")
        for t in DISAGREE:
            f = compute_flags(table, store.label, store.split, FlagSettings(disagree_mass=t))
            cells.append(f"{int(f.disagrees[outliers].sum())} / {int(f.disagrees[normal].sum())}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


def defaults_table(store, features, models: dict[str, str], outliers: np.ndarray) -> list[str]:
    from core.jobs import CancelToken, drive
    from core.pets.label_issues import ISSUE_SCORE, rank_label_issues
    from core.pets.outliers import FlagSettings, compute_flags

    normal = ~outliers
    d = FlagSettings()
    lines = [
        f"#### At the defaults (top-N {d.top_n}, both {d.both_mass}, disagrees "
        f"{d.disagree_mass}, 5-fold label issues)",
        "",
        "| model | outliers caught by any flag | normal flagged outlier or both | "
        "normal flagged by any flag | missed |",
        "| --- | --- | --- | --- | --- |",
    ]
    for title, key in models.items():
        drive(rank_label_issues(store, features, key, CancelToken()), CancelToken())
        f = compute_flags(store.scan_table(key), store.label, store.split, FlagSettings())
        issue = store.scores(ISSUE_SCORE) == 1
        any_flag = f.outlier | f.both | f.disagrees | issue
        strong = f.outlier | f.both
        missed = [store.paths[r].rsplit("/", 1)[-1] for r in np.flatnonzero(outliers & ~any_flag)]
        lines.append(
            f"| {title} | {int(any_flag[outliers].sum())} of {int(outliers.sum())} | "
            f"{int(strong[normal].sum())} ({strong[normal].mean():.1%}) | "
            f"{int(any_flag[normal].sum())} | {', '.join(missed) or '—'} |"
        )
    return lines


def label_issue_table(store, features, models: dict[str, str], outliers, args) -> list[str]:
    from core.jobs import CancelToken, drive
    from core.pets.label_issues import find_label_issues, out_of_fold_probabilities

    try:
        from cleanlab.filter import find_label_issues as cleanlab_issues
    except ImportError:
        cleanlab_issues = None
    rows = np.flatnonzero(~outliers & (store.split == 0))
    clean = (store.file_label[rows] - 1).astype(np.int64)
    flips = round(args.flip * len(rows))
    seeds = range(args.seed, args.seed + args.flip_seeds)
    lines = [
        f"#### Label issues: {flips} of {len(rows):,} labels flipped, mean (lowest) over "
        f"{len(seeds)} seeds; 5-fold out-of-fold logistic regression on the embeddings",
        "",
        "| embeddings | Labelscope precision | recall | cleanlab precision | recall | "
        f"first {flips} by label quality: precision = recall |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    sets = dict(models)
    if len(models) > 1:
        sets[" + ".join(models)] = ""
    for title, key in sets.items():
        keys = [key] if key else list(models.values())
        vectors = np.concatenate([features.get(k, store.ids[rows])[1] for k in keys], axis=1)
        scores: dict[str, list[float]] = {}
        for seed in seeds:
            truth = np.zeros(len(rows), dtype=bool)
            truth[np.random.default_rng(seed).choice(len(rows), flips, replace=False)] = True
            labels = np.where(truth, 1 - clean, clean)
            probs = drive(
                out_of_fold_probabilities(vectors.astype(np.float32), labels, CancelToken()),
                CancelToken(),
            )
            ours = find_label_issues(probs, labels)
            found = {"ours": ours.issue}
            if cleanlab_issues is not None:
                found["cleanlab"] = cleanlab_issues(labels, probs)
            for name, mask in found.items():
                scores.setdefault(f"{name} precision", []).append(_ratio(mask & truth, mask))
                scores.setdefault(f"{name} recall", []).append(_ratio(mask & truth, truth))
            first = np.argsort(ours.self_confidence, kind="stable")[:flips]
            scores.setdefault("first", []).append(float(truth[first].mean()))
        cells = [
            _mean_low(scores.get(name, []))
            for name in (
                "ours precision", "ours recall", "cleanlab precision", "cleanlab recall", "first"
            )
        ]  # fmt: skip
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def _ratio(hits: np.ndarray, of: np.ndarray) -> float:
    return float(hits.sum() / of.sum()) if of.sum() else float("nan")


def _mean_low(values: list[float]) -> str:
    return f"{np.mean(values):.1%} ({np.min(values):.1%})" if values else "—"


def training_table(store, models: dict[str, str], args) -> list[str]:
    from core.jobs import CancelToken, drive
    from core.pets.runs import TrainRequest
    from core.pets.training import compare_cleaning, train_run

    lines = [
        "#### Training on the same seeded split (20 % validation, seed 0)",
        "",
        "| run | validation log loss (clipped) | accuracy | train images | seconds |",
        "| --- | --- | --- | --- | --- |",
    ]

    def row(result) -> str:
        e = result.evaluation
        return (
            f"| {result.title} | {e['log_loss_clipped']:.4f} | {e['accuracy']:.2%} | "
            f"{result.counts['train']:,} | {result.seconds:.1f} |"
        )

    keys = list(models.values())
    sets = [(k,) for k in keys] + ([tuple(keys)] if len(keys) > 1 else [])
    for chosen in sets:
        request = TrainRequest("features", models=chosen, predict_test=False)
        pair = drive(compare_cleaning(store, request, CancelToken()), CancelToken())
        lines += [row(pair.with_flagged), row(pair.without_flagged)]
    if args.finetune_epochs:
        from core.pets.backbones import CPU_DEFAULT

        request = TrainRequest(
            "finetune",
            backbone=CPU_DEFAULT,
            device=args.device,
            epochs=args.finetune_epochs,
            freeze_epochs=1,
            gradual=True,
            predict_test=False,
        )
        lines.append(row(drive(train_run(store, request, CancelToken()), CancelToken())))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flip-seeds", type=int, default=5, help="flip seeds to average")
    args = parser.parse_args()

    import os

    from core.jobs import CancelToken, drive
    from core.pets import backbones
    from core.pets.features import FeatureCache, features_location
    from core.pets.labelstore import open_store
    from core.pets.outliers import ScanRequest, scan_dataset

    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        os.environ["LABELSCOPE_DATA_DIR"] = str(Path(folder) / "data")
        root, outlier_names = build_dataset(args.data, Path(folder) / "dogs_vs_cats")
        store, _ = drive(open_store(root, CancelToken()), CancelToken())
        outliers = np.array([p.rsplit("/", 1)[-1] in outlier_names for p in store.paths])
        models: dict[str, str] = {}
        out = [f"{len(store):,} train images, {int(outliers.sum())} known outliers", ""]
        out += ["| model | scan seconds | images/s |", "| --- | --- | --- |"]
        for key, b in backbones.BACKBONES.items():
            if not b.installed or backbones.installed_file(b) is None:
                continue
            started = time.perf_counter()
            request = ScanRequest(key, args.device, splits=("train",), label_issues=False)
            outcome = drive(scan_dataset(store, request, CancelToken()), CancelToken())
            seconds = time.perf_counter() - started
            models[b.title] = outcome.summary.model
            out.append(f"| {b.title} | {seconds:.1f} | {len(store) / seconds:.0f} |")
            print(out[-1], flush=True)
        features = FeatureCache(features_location(store.root))
        out += [""] + flag_tables(store, models, outliers)
        out += [""] + defaults_table(store, features, models, outliers)
        print("\n".join(out), flush=True)
        out += [""] + training_table(store, models, args)
        print("\n".join(out[-20:]), flush=True)
        out += [""] + label_issue_table(store, features, models, outliers, args)
        features.close()
        store.close()
    print()
    print("\n".join(out))


if __name__ == "__main__":
    main()
