"""Pets training on the real images: every mode, on the same seeded, stratified split, with
its validation scores and time; and the features mode's cost: embedding extraction (the
scan) and the head. Features and fine-tuning use the installed EfficientNet-Lite0 ImageNet
weights, so nothing is downloaded.

    python -m benchmarks.pets_train [--data ../shared/data/dogs_vs_cats] [--epochs 15]
                                    [--image-size 96] [--seed 0] [--finetune-epochs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.harness import machine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dogs_vs_cats"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    args = parser.parse_args()

    from core import devices
    from core.jobs import CancelToken, drive
    from core.pets import backbones, imagenet
    from core.pets.features import FeatureCache, features_location
    from core.pets.labelstore import open_store
    from core.pets.outliers import scan
    from core.pets.runs import TrainRequest
    from core.pets.training import train_run

    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        import os

        os.environ["LABELSCOPE_DATA_DIR"] = folder
        store, _ = drive(
            open_store(args.data, CancelToken(), db_path=Path(folder) / "s.sqlite"), CancelToken()
        )
        b = backbones.backbone(backbones.CPU_DEFAULT)
        weights = imagenet.weights_state(b).path
        model = imagenet.load_model(b, weights, devices.choose("cpu"))
        cache = FeatureCache(features_location(store.root))
        started = time.perf_counter()
        summary = drive(scan(store, model, CancelToken(), features=cache), CancelToken())
        cache.close()
        extraction = time.perf_counter() - started
        store.begin_scan(model.key, b.key, model.key, True, "cpu")
        print(
            f"embeddings ({b.title}, {model.feature_dim} dims, installed ImageNet weights): "
            f"{summary.scanned:,} images in {extraction:.1f} s = "
            f"{summary.scanned / extraction:.0f} images/s (with top-10 and SQLite writes)"
        )
        requests = [
            TrainRequest("features", models=(model.key,), seed=args.seed),
            TrainRequest("classic", classic_model="svm", seed=args.seed),
            TrainRequest("classic", classic_model="knn", seed=args.seed),
            TrainRequest("classic", classic_model="forest", seed=args.seed),
            TrainRequest("scratch", epochs=args.epochs, image_size=args.image_size, seed=args.seed),
            TrainRequest(
                "finetune",
                backbone=b.key,
                epochs=args.finetune_epochs,
                image_size=224,
                freeze_epochs=1,
                gradual=True,
                seed=args.seed,
            ),
        ]
        print()
        print("| mode | validation log loss (clipped) | plain | accuracy | ROC AUC | "
              "train + predict time (s) | training images/s |")  # fmt: skip
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for request in requests:
            rates: list[float] = []

            def follow(progress, rates=rates) -> None:
                if "images/s" in progress.metrics and "epoch" not in progress.metrics:
                    rates.append(progress.metrics["images/s"])

            result = drive(train_run(store, request, CancelToken()), CancelToken(), follow)
            e = result.evaluation
            rate = f"{sorted(rates)[len(rates) // 2]:.0f}" if rates else "–"
            print(
                f"| {result.title} | {e['log_loss_clipped']:.4f} | {e['log_loss']:.4f} | "
                f"{e['accuracy']:.1%} | {e['auc']:.4f} | {result.seconds:.1f} | {rate} |",
                flush=True,
            )
        print(
            f"\nsplit: {result.counts['train']} train / {result.counts['val']} validation, "
            f"stratified, seed {args.seed}; test predictions for {result.counts['test']} images"
        )
        store.close()


if __name__ == "__main__":
    main()
