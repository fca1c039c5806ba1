"""How many labelled images confident learning needs before its *Likely mislabelled* flags
mean something: the measurement behind `core.pets.label_issues.MIN_PER_CLASS`.

    python -m benchmarks.label_issue_minimum [--data ../shared/data/dogs_vs_cats]
                                             [--trials 40] [--seed 0]

The 1,000 real train photos are scanned once with the installed EfficientNet-Lite0 (the
default) by the app's scan job. Then, for n labelled images per class, `--trials` random
subsets of n cats and n dogs are drawn; in each, one label in twenty (at least one) is
flipped, and the app's ranking (the same 5-fold, or fewer, out-of-fold head and confident
learning) runs on the subset. Reported per n: the share of flags that are real flips
(precision), the share of flips flagged (recall), and on the same subsets unflipped, the
mean number of correct labels flagged (false alarms on a clean set).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.harness import machine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dogs_vs_cats"
SIZES = (3, 5, 7, 10, 15, 20, 30, 50, 100, 200)


def embeddings(data: Path, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, labels 0 cat / 1 dog) of the real train photos, from the app's scan."""
    import os

    from core.jobs import CancelToken, drive
    from core.pets.features import FeatureCache, features_location
    from core.pets.labelstore import open_store
    from core.pets.outliers import ScanRequest, scan_dataset

    os.environ["LABELSCOPE_DATA_DIR"] = str(folder / "data")
    train = folder / "pets" / "train"
    train.mkdir(parents=True)
    for path in sorted((data / "train").glob("*.jpg")):
        (train / path.name).symlink_to(path.resolve())
    store, _ = drive(open_store(folder / "pets", CancelToken()), CancelToken())
    request = ScanRequest("efficientnet_lite0", "cpu", splits=("train",), label_issues=False)
    outcome = drive(scan_dataset(store, request, CancelToken()), CancelToken())
    features = FeatureCache(features_location(store.root))
    ids, vectors = features.get(outcome.summary.model, store.ids)
    labels = np.array([store.label[store.row_of[int(s)]] - 1 for s in ids])
    features.close()
    store.close()
    return vectors, labels


def trial(vectors: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator):
    """(flags that are flips, flags, flips, false alarms on the unflipped subset)."""
    from core.jobs import CancelToken, drive
    from core.pets.label_issues import find_label_issues, out_of_fold_probabilities

    chosen = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), n, replace=False) for c in (0, 1)]
    )
    x, clean = vectors[chosen], labels[chosen]
    flips = rng.choice(len(chosen), max(1, round(0.05 * len(chosen))), replace=False)
    given = clean.copy()
    given[flips] = 1 - given[flips]
    seed = int(rng.integers(1 << 30))
    found = find_label_issues(
        drive(out_of_fold_probabilities(x, given, CancelToken(), seed=seed), CancelToken()),
        given,
    ).issue
    alarms = find_label_issues(
        drive(out_of_fold_probabilities(x, clean, CancelToken(), seed=seed), CancelToken()),
        clean,
    ).issue
    return int(found[flips].sum()), int(found.sum()), len(flips), int(alarms.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        vectors, labels = embeddings(args.data, Path(folder))
    rng = np.random.default_rng(args.seed)
    print(f"{len(labels):,} real photos, EfficientNet-Lite0 embeddings; {args.trials} trials")
    print()
    print("| per class | precision | recall | false alarms on a clean set (mean) |")
    print("| --- | --- | --- | --- |")
    for n in SIZES:
        hits = flagged = flips = alarms = 0
        for _ in range(args.trials):
            h, f, k, a = trial(vectors, labels, n, rng)
            hits, flagged, flips, alarms = hits + h, flagged + f, flips + k, alarms + a
        precision = f"{hits / flagged:.0%}" if flagged else "no flags"
        print(
            f"| {n} | {precision} | {hits / flips:.0%} | {alarms / args.trials:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
