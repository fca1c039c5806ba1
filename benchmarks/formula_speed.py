"""How fast the formula recogniser reads, and trains, on this machine.

    python -m benchmarks.formula_speed [--model M] [--repeats 5] [--threads N]
                                       [--blas-threads N|own]

Single image: one 180×60 PNG end to end (decode, preprocess, forward, greedy decode, and
the second look where the reading is unsure), median over 200 images. Batch: images/s
reading 1,024 prepared images in batches of 256 (with channels-last convolutions, the app's
way, interleaved with channels-first ones, the former way).
Baseline in the same run: the model's forward pass alone on an all-zero input of the same
size, the floor the rest is measured against; and the single image read with torch's own
GRU, as before `crnn.small_batch_gru`, interleaved with the app's way. Then the default steps
that inspect every image, *Thin bold strokes* and *Remove ruled lines*, alone: on the gray
images, on them binarised (Otsu), on them binarised with strokes thickened by a 3×3 square
(the ones the first thins) and on the gray images in a frame (the one the second removes).
Last, the GRU of small batches (`crnn.small_batch_gru`, NumPy) against torch's own GRU,
the former way, on the same inputs: the batch size up to which NumPy is used comes from
this table. And batches of many widths, each image read as alone (the app's way) against
the batch read as one padded tensor (before). And what the second look at unsure readings
costs, on the captcha images and on them binarised with thick strokes, with and without the
referee (the shipped large model, asked where the widths disagree), against one look.

`--blas-threads own` runs everything with NumPy's BLAS on its own threads, as before
`crnn.BLAS_THREADS`: compare it with a run without it, one after the other. It cannot be
interleaved with the app's way in one process: BLAS's threads go on spinning after a call
and slow whatever runs next.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.formula_robustness import STROKES, global_at
from benchmarks.harness import machine
from core.formula import crnn, preprocess
from core.formula.generate import GenerateConfig, make_one
from core.formula.recognizer import SHIPPED_MODEL, Recognizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(SHIPPED_MODEL))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch's threads (default: torch's own)")
    parser.add_argument(
        "--blas-threads",
        default=str(crnn.BLAS_THREADS),
        help="NumPy's BLAS threads while the GRU runs in NumPy, or 'own' (default: the app's)",
    )
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    crnn.BLAS_THREADS = None if options.blas_threads == "own" else int(options.blas_threads)
    recognizer = Recognizer.load(options.model)
    _ = recognizer.referee  # loads the shipped small model's referee before any timing
    config = GenerateConfig(1024, style="captcha", form="level1", seed=99)
    images = [make_one(config, i)[2] for i in range(1024)]
    with tempfile.TemporaryDirectory() as scratch:
        paths = []
        for i, image in enumerate(images[:200]):
            path = Path(scratch) / f"{i}.png"
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            paths.append(path)
        for path in paths[:20]:  # warm-up
            recognizer.recognize_file(path)
        single, single_torch_gru = [], []  # interleaved: the app's way and the former one
        limit = crnn.NUMPY_GRU_MAX_BATCH
        for path in paths:
            for times, crnn.NUMPY_GRU_MAX_BATCH in ((single, limit), (single_torch_gru, 0)):
                start = time.perf_counter()
                recognizer.recognize_file(path)
                times.append((time.perf_counter() - start) * 1e3)
        crnn.NUMPY_GRU_MAX_BATCH = limit
    zero = torch.zeros(1, 1, recognizer.config.height, 96)
    with torch.inference_mode():  # as the recogniser runs it
        for _ in range(20):
            recognizer.model(zero)
        floor = []
        for _ in range(200):
            start = time.perf_counter()
            recognizer.model(zero)
            floor.append((time.perf_counter() - start) * 1e3)
    prepared = [recognizer.prepare(image) for image in images]
    rates, channels_first = [], []  # interleaved: the app's convolutions and the former ones
    for _ in range(options.repeats):
        for times, layout in (
            (rates, torch.channels_last),
            (channels_first, torch.contiguous_format),
        ):
            recognizer.model.to(memory_format=layout)
            start = time.perf_counter()
            for i in range(0, len(prepared), 256):
                recognizer.forward(prepared[i : i + 256])
            times.append(len(prepared) / (time.perf_counter() - start))
    recognizer.model.to(memory_format=torch.channels_last)
    end_to_end = []
    for _ in range(options.repeats):
        start = time.perf_counter()
        for i in range(0, len(images), 256):
            recognizer.read_batch(images[i : i + 256])
        end_to_end.append(len(images) / (time.perf_counter() - start))
    blas = "their own" if crnn.BLAS_THREADS is None else crnn.BLAS_THREADS
    print(
        f"{time.strftime('%Y-%m-%d')} · {machine()} · torch threads {torch.get_num_threads()}"
        f" · NumPy's BLAS threads in the GRU {blas}\n"
    )
    print("| case | median | goal |")
    print("| --- | ---: | ---: |")
    print(
        f"| forward pass alone, 1 image of 96×{recognizer.config.height} (baseline) "
        f"| {statistics.median(floor):.2f} ms | |"
    )
    print(
        f"| one 180×60 PNG end to end (decode, preprocess, forward, greedy, second look) | "
        f"{statistics.median(single):.2f} ms | ≤ 5 ms |"
    )
    print(
        f"| the same, with torch's GRU (the former way, interleaved with the row above) | "
        f"{statistics.median(single_torch_gru):.2f} ms | |"
    )
    print(
        f"| batches of 256, forward pass on prepared images | "
        f"{statistics.median(rates):,.0f} images/s | |"
    )
    print(
        f"| the same, channels-first convolutions (the former way, interleaved) | "
        f"{statistics.median(channels_first):,.0f} images/s | |"
    )
    print(
        f"| batches of 256, preprocess + forward + greedy + second look | "
        f"{statistics.median(end_to_end):,.0f} images/s | ≥ 600 images/s |"
    )

    alone = Recognizer.load(options.model, referee=False)
    print_second_look_times(recognizer, alone, images[:200], options.repeats)
    print_step_times(images[:200])
    print_gru_times(recognizer)
    print_mixed_widths(recognizer, options.repeats)


def binarised_thick(image: np.ndarray) -> np.ndarray:
    """The robustness benchmark's global threshold at 70 % with thick strokes, a row where
    many readings are unsure."""
    return STROKES["thick"](global_at(0.7)(image))


def print_second_look_times(
    recognizer: Recognizer, alone: Recognizer, images: list[np.ndarray], repeats: int
) -> None:
    """What reading unsure images again at other widths (`Recognizer.look_again`) costs: one
    image read with it (the app's way, the referee asked where the widths disagree), with
    the widths alone (`alone`: the same model without its referee) and with one look,
    interleaved, on the captcha images and on them binarised with thick strokes; and
    batches of 256 the three ways. With the shares of images read again and of images the
    referee was asked about."""
    ways = {"one look": (alone, False), "widths alone": (alone, True), "app": (recognizer, True)}
    print("\n| 180×60 images, end to end | read again / referee asked | one look: median / "
          "mean | widths alone: median / mean / slowest 5 % | with the referee: median / "
          "mean / slowest 5 % |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, inputs in (
        ("captcha (as above)", images),
        ("binarised, global 70 %, thick strokes", [binarised_thick(im) for im in images]),
    ):
        times: dict[str, list[float]] = {way: [] for way in ways}
        again = asked = 0
        for image in inputs:
            for way, (reader, look) in ways.items():
                start = time.perf_counter()
                result = reader.recognize(image, look_again=look)
                times[way].append((time.perf_counter() - start) * 1e3)
            again += result.second_look is not None
            asked += result.second_look is not None and result.second_look.referee is not None
        cells = [
            f"{statistics.median(t):.2f} / {statistics.mean(t):.2f}"
            + ("" if way == "one look" else f" / {np.percentile(t, 95):.1f}")
            + " ms"
            for way, t in times.items()
        ]
        share = f"{again / len(inputs):.1%} / {asked / len(inputs):.1%}"
        print(f"| {name} | {share} | " + " | ".join(cells) + " |")
        rates: dict[str, list[float]] = {way: [] for way in ways}
        batches = inputs * 4
        for _ in range(repeats):
            for way, (reader, look) in ways.items():
                start = time.perf_counter()
                for i in range(0, len(batches), 256):
                    reader.read_batch(batches[i : i + 256], look_again=look)
                rates[way].append(len(batches) / (time.perf_counter() - start))
        print(
            "| the same in batches of 256 | | "
            + " | ".join(f"{statistics.median(r):,.0f} images/s" for r in rates.values())
            + " |"
        )


def print_mixed_widths(recognizer: Recognizer, repeats: int) -> None:
    """Batches of 256 prepared inputs of widths 60–200 px (a folder of formulas of many
    lengths): each read as alone (the app's way: in width-sorted groups, the padding masked
    in the CNN, the GRU packed) against the batch read as one padded tensor (the former
    way), interleaved."""
    rng = np.random.default_rng(5)
    height = recognizer.config.height
    inputs = [rng.random((height, int(w))).astype(np.float32) for w in rng.integers(60, 201, 1024)]
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for alone in (True, False):
            start = time.perf_counter()
            for i in range(0, len(inputs), 256):
                recognizer.forward(inputs[i : i + 256], alone)
            times[alone].append(len(inputs) / (time.perf_counter() - start))
    print("\n| batches of 256 of widths 60–200 px, forward pass | images/s |")
    print("| --- | ---: |")
    print(f"| each read as alone (the app) | {statistics.median(times[True]):,.0f} |")
    print(f"| one padded tensor (before) | {statistics.median(times[False]):,.0f} |")


def print_step_times(images: list[np.ndarray]) -> None:
    """The median time per image of the two default steps that inspect every image,
    `preprocess.thin_bold` and `preprocess.remove_lines`, 10 calls each."""
    gray = [preprocess.to_gray(image) for image in images]
    binary = [preprocess.binarize_otsu(image) for image in gray]
    bold = [cv2.erode(image, np.ones((3, 3), np.uint8)) for image in binary]
    framed = [cv2.rectangle(image.copy(), (0, 0), (179, 59), 40, 1) for image in gray]
    print("\n| one 180×60 image | Thin bold strokes | Remove ruled lines |")
    print("| --- | ---: | ---: |")
    for name, inputs in (
        ("gray captcha image (left alone by both)", gray),
        ("binarised, normal strokes", binary),
        ("binarised, thickened strokes (thinned)", bold),
        ("gray, in a frame (the frame removed)", framed),
    ):
        cells = []
        for step in (preprocess.thin_bold, preprocess.remove_lines):
            times = []
            for image in inputs:
                start = time.perf_counter()
                for _ in range(10):
                    step(image)
                times.append((time.perf_counter() - start) * 1e2)
            cells.append(f"{statistics.median(times):.3f} ms")
        print(f"| {name} | {' | '.join(cells)} |")


def print_gru_times(recognizer: Recognizer) -> None:
    """The median forward pass of 96-pixel-wide inputs by batch size, with the GRU read in
    NumPy (whatever its size) and in torch, interleaved."""
    print(
        f"\n| batch (96×{recognizer.config.height} images) | forward, GRU in NumPy "
        "| forward, torch's GRU |"
    )
    print("| ---: | ---: | ---: |")
    limit, hidden = crnn.NUMPY_GRU_MAX_BATCH, crnn.NUMPY_GRU_MAX_HIDDEN
    crnn.NUMPY_GRU_MAX_HIDDEN = 10**6
    try:
        for batch in (1, 2, 4, 8, 16):
            inputs = torch.rand(batch, 1, recognizer.config.height, 96)
            times: dict[int, list[float]] = {batch: [], 0: []}
            with torch.inference_mode():
                for repeat in range(220):
                    for crnn.NUMPY_GRU_MAX_BATCH in (batch, 0):
                        start = time.perf_counter()
                        recognizer.model(inputs)
                        if repeat >= 20:  # warm-up
                            times[crnn.NUMPY_GRU_MAX_BATCH].append(
                                (time.perf_counter() - start) * 1e3
                            )
            print(
                f"| {batch} | {statistics.median(times[batch]):.2f} ms | "
                f"{statistics.median(times[0]):.2f} ms |"
            )
    finally:
        crnn.NUMPY_GRU_MAX_BATCH, crnn.NUMPY_GRU_MAX_HIDDEN = limit, hidden


if __name__ == "__main__":
    main()
