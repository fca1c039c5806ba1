"""Loosely cropped formula images: sequence accuracy with and without cropping, on images
as drawn and with paper margins added around them, and on the real Baidu samples likewise.

    python -m benchmarks.formula_margins [--baseline B [--one-look | --no-referee]]
        [--model M ...]
        [--count 1000] [--seed 515151]

The margins are what a user's own crop leaves: paper of the image's own colour added on each
side, left and right 0.5–2 times the image's height, top and bottom 0.2–1 times (drawn per
image from the seed); wide margins, three times those, are a formula small on a page or a
screenshot. The same images are read nine ways in one run: as drawn, with margins or with
wide margins, each without the *Crop or pad margins* step (the former default, the
baseline), with the default preprocessing (which trims loose margins), and with *Crop to
ink* always on. With `--baseline` and `--model`, each model reads the same images in turn,
one table each; with `--one-look`, the baseline takes each greedy reading as it is (as
before unsure readings were read again at other widths), with `--no-referee` its second look
does not ask the shipped large model where the widths disagree.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from benchmarks.harness import machine
from core.formula import preprocess
from core.formula.evaluation import EvalReport
from core.formula.generate import GenerateConfig, make_one
from core.formula.recognizer import SHIPPED_MODEL, Recognizer
from core.images import read_image

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "formula_samples"
KINDS = {"as drawn": 0.0, "margins": 1.0, "wide margins": 3.0}
WAYS = {
    "no trim": preprocess.DEFAULT - {"trim"},
    "default (trim loose margins)": preprocess.DEFAULT,
    "always crop": preprocess.DEFAULT | {"crop"},
}


def with_margins(image: np.ndarray, rng: random.Random, scale: float = 1.0) -> np.ndarray:
    """`image` on a larger sheet of its own paper colour (the median of its border)."""
    height = image.shape[0]
    left, right = (round(height * rng.uniform(0.5, 2.0) * scale) for _ in range(2))
    top, bottom = (round(height * rng.uniform(0.2, 1.0) * scale) for _ in range(2))
    return preprocess.pad_with_paper(image, (top, bottom, left, right))


def read(
    recognizer: Recognizer, images: list[np.ndarray], steps, look_again: bool = True
) -> list[str]:
    texts = []
    for start in range(0, len(images), 128):
        batch = images[start : start + 128]
        texts += recognizer.read_batch(batch, look_again=look_again, steps=steps)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="a model to compare against, read first")
    parser.add_argument("--model", action="append", help="models to read (default shipped)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=515151)
    parser.add_argument("--share", type=float, default=preprocess.LOOSE_SHARE,
                        help="trim when the ink covers less than this share (default "
                        "%(default)s)")  # fmt: skip
    parser.add_argument("--one-look", action="store_true",
                        help="the baseline reads each image once")  # fmt: skip
    parser.add_argument("--no-referee", action="store_true",
                        help="the baseline's second look reads alone")  # fmt: skip
    args = parser.parse_args()
    preprocess.LOOSE_SHARE = args.share
    print(machine())
    models = ([args.baseline] if args.baseline else []) + (args.model or [str(SHIPPED_MODEL)])
    for index, model in enumerate(models):
        first = bool(args.baseline) and index == 0
        look_again = not (args.one_look and first)
        recognizer = Recognizer.load(model, referee=not (args.no_referee and first))
        _tables(recognizer, Path(model), args, look_again)


def _tables(
    recognizer: Recognizer, model: Path, args: argparse.Namespace, look_again: bool
) -> None:
    print(
        f"\nModel {model}{'' if look_again else ', one look'}"
        f"{', no referee' if look_again and recognizer.referee is None else ''}, "
        f"{args.count:,} images a row, "
        f"seed {args.seed}, trim below {args.share:g} of the image.\n"
    )
    print("| style | formulas | images | " + " | ".join(
        f"{kind}, {way}" for kind in KINDS for way in WAYS
    ) + " |")  # fmt: skip
    print("| --- | --- | ---: |" + " ---: |" * (len(KINDS) * len(WAYS)))
    for style, form in [("captcha", "level1"), ("fonts", "mixed"), ("strokes", "mixed"),
                        ("printed", "mixed"), ("mixed", "mixed")]:  # fmt: skip
        config = GenerateConfig(args.count, style=style, form=form, seed=args.seed)
        items = [make_one(config, i) for i in range(args.count)]
        truths = [item.text for item, _style, _image in items]
        drawn = [image for _item, _style, image in items]
        cells = []
        for scale in KINDS.values():
            rng = random.Random(args.seed)
            images = [with_margins(image, rng, scale) if scale else image for image in drawn]
            for steps in WAYS.values():
                report = EvalReport()
                for i, (truth, text) in enumerate(
                    zip(truths, read(recognizer, images, steps, look_again), strict=True)
                ):
                    report.add(i, truth, text)
                cells.append(f"{report.accuracy:.2%}")
        print(f"| {style} | {form} | {args.count:,} | " + " | ".join(cells) + " |", flush=True)
    if REAL.is_dir():
        rows = [
            line.split("\t")[:2] for line in (REAL / "SOURCES.tsv").read_text().splitlines()[1:]
        ]
        rng = random.Random(args.seed)
        print("\n| real image | truth | " + " | ".join(
            f"{kind}, {way}" for kind in KINDS for way in WAYS
        ) + " |")  # fmt: skip
        print("| --- | --- |" + " --- |" * (len(KINDS) * len(WAYS)))
        for name, truth in rows:
            image = read_image(REAL / name)
            cells = []
            for scale in KINDS.values():
                picture = with_margins(image, rng, scale) if scale else image
                for steps in WAYS.values():
                    text = read(recognizer, [picture], steps, look_again)[0]
                    cells.append(f"`{text}` {'✓' if text == truth else '✗'}")
            print(f"| {name} | `{truth}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
