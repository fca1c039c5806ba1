"""Is the recogniser's confidence a probability? Temperature scaling, fitted on one set of
fresh images and judged on another by the expected calibration error (ECE).

    python -m benchmarks.formula_calibration [--model M] [--fit 1000] [--test 3000]

Confidence of a reading = the exact p(top beam-search reading | x) at the temperature.
Images: mixed styles and formulas with the augmentation used in training (harder than the
clean images, so that there are mistakes to calibrate on).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.harness import machine
from core.formula import calibration
from core.formula.augment import augment
from core.formula.generate import GenerateConfig, make_one
from core.formula.recognizer import SHIPPED_MODEL, Recognizer


def items(recognizer: Recognizer, count: int, seed: int) -> list[tuple[np.ndarray, str]]:
    config = GenerateConfig(count, style="mixed", form="mixed", seed=seed)
    out, batch, texts = [], [], []
    for index in range(count):
        sample, _, image = make_one(config, index)
        batch.append(recognizer.prepare(augment(image, np.random.default_rng([seed, index]))))
        texts.append(sample.text)
        if len(batch) == 256 or index == count - 1:
            out.extend(zip(recognizer.forward(batch), texts, strict=True))
            batch, texts = [], []
    return out


def report(data: list[tuple[np.ndarray, str]], temperature: float) -> tuple[float, float, float]:
    readings = [calibration.confidence(lp, temperature) for lp, _ in data]
    correct = [r == t for (r, _), (_, t) in zip(readings, data, strict=True)]
    confidences = [c for _, c in readings]
    ece = calibration.expected_calibration_error(confidences, correct)
    return float(np.mean(correct)), float(np.mean(confidences)), ece


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(SHIPPED_MODEL))
    parser.add_argument("--fit", type=int, default=1000)
    parser.add_argument("--test", type=int, default=3000)
    options = parser.parse_args()
    recognizer = Recognizer.load(options.model)
    fit = items(recognizer, options.fit, 515151)
    test = items(recognizer, options.test, 626262)
    start = time.perf_counter()
    temperature = calibration.fit_temperature(fit)
    seconds = time.perf_counter() - start
    print(f"{time.strftime('%Y-%m-%d')} · {machine()}\n")
    print(
        f"Temperature fitted on {len(fit):,} images: T = {temperature:.3f} "
        f"({seconds:.1f} s). Judged on {len(test):,} other images.\n"
    )
    print("| temperature | accuracy | mean confidence | ECE (10 bins) |")
    print("| --- | ---: | ---: | ---: |")
    for name, value in (("1 (as trained)", 1.0), (f"{temperature:.3f} (fitted)", temperature)):
        accuracy, mean_confidence, ece = report(test, value)
        print(f"| {name} | {accuracy:.2%} | {mean_confidence:.2%} | {ece:.4f} |")


if __name__ == "__main__":
    main()
