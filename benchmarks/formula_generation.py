"""How fast Labelscope draws formula images, against the `captcha` package.

    pip install -e ".[bench]"
    python -m benchmarks.formula_generation [--count N] [--repeats R]

Baseline: `captcha.image.ImageCaptcha.generate_image` on one core, drawing the same level-1
texts in memory (no files). Cases: our captcha style on one core in memory (like for
like); `labelscope formula generate` with 1 and 2 worker processes writing PNG files and
labels.txt (mixed styles, the real job, process start-up included).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import Case, measure, table
from core.formula import expressions, synth
from core.formula.generate import GenerateConfig, generate
from core.jobs import CancelToken, drive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    try:
        from captcha.image import ImageCaptcha
    except ImportError:
        sys.exit("the baseline needs the captcha package: pip install -e '.[bench]'")

    rng = random.Random(0)
    texts = [expressions.level1(rng) for _ in range(options.count)]
    package = ImageCaptcha(width=180, height=60)

    def baseline() -> None:
        for text in texts:
            package.generate_image(text)

    def ours_in_memory() -> None:
        for i, text in enumerate(texts):
            synth.render(text, synth.rng_for(0, i), "captcha", width=180)

    scratch = Path(tempfile.mkdtemp())

    def to_disk(workers: int) -> None:
        out = scratch / f"set-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        config = GenerateConfig(options.count, style="mixed", form="level1")
        drive(generate(out, config, CancelToken(), workers), CancelToken())

    cases = []
    for name, fn in [
        ("captcha 0.7 generate_image, 1 core, in memory", baseline),
        ("Labelscope captcha style, 1 core, in memory", ours_in_memory),
        ("labelscope formula generate, 1 worker, PNG files", lambda: to_disk(1)),
        ("labelscope formula generate, 2 workers, PNG files", lambda: to_disk(2)),
    ]:
        seconds = measure(fn, options.repeats, warmup=1)
        cases.append(Case(name, seconds))
        rate = options.count / cases[-1].median
        print(f"{name}: {rate:,.0f} images/s", file=sys.stderr)
    shutil.rmtree(scratch, ignore_errors=True)

    baseline_name = cases[0].name
    print(table(f"Formula generation ({options.count:,} images a run)", cases, baseline_name))
    print()
    print("| case | images/s (median) |")
    print("| --- | ---: |")
    for case in cases:
        print(f"| {case.name} | {options.count / case.median:,.0f} |")


if __name__ == "__main__":
    main()
