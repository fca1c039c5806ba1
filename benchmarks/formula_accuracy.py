"""Sequence accuracy of a formula recogniser on freshly drawn images of each style, and on
the real Baidu samples.

    python -m benchmarks.formula_accuracy [--model M] [--count 5000] [--seed 424242]

Each row gives the greedy readings' accuracy and, in the same run on the same
log-posteriors, that of the grammar-constrained beam search (`--grammar` in the CLI) and
that of the greedy readings with the unsure ones read again at other widths (the app's
reading; `--one-look` in the CLI reads as the first column), with the widths alone (the
model without its referee, `--no-referee`), and the grammar's readings read again likewise.
Each style gets `count` images of the mixed forms (level 1, general, equations) from a
seed no training run uses, plus a level-1 captcha set (the real set's kind). The real
images come from ../shared/data/formula_samples when it is there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.formula import preprocess, synth
from core.formula.decoding import greedy
from core.formula.evaluation import EvalReport
from core.formula.generate import GenerateConfig, make_one
from core.formula.recognizer import SHIPPED_MODEL, Recognizer, grammatical
from core.images import read_image

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "formula_samples"


#: The columns `score` reports, in order.
COLUMNS = (
    "greedy",
    "with the grammar",
    "read again where unsure, widths alone",
    "read again where unsure (the app)",
    "the grammar, read again where unsure",
)


def score(
    recognizer: Recognizer, alone: Recognizer, style: str, form: str, count: int, seed: int
) -> dict[str, EvalReport]:
    """A report for each of `COLUMNS`, all from the same log-posteriors: the greedy
    readings; the grammar-constrained ones; the greedy readings with the unsure ones read
    again at other widths by `alone` (the model without its referee) and by `recognizer`
    (the app's); and the grammar's readings read again likewise (`--grammar` in the CLI)."""
    config = GenerateConfig(count, style=style, form=form, seed=seed)
    reports = {column: EvalReport() for column in COLUMNS}
    batch: list = []
    truths: list[str] = []

    def flush() -> None:
        log_probs = recognizer.forward([recognizer.prepare(image) for image in batch])
        readings = [greedy(lp) for lp in log_probs]
        formulas = [grammatical(lp) for lp in log_probs]
        read = {
            "greedy": [h.text for h in readings],
            "with the grammar": [h.text for h in formulas],
        }
        for column, reader, first, grammar in (
            ("read again where unsure, widths alone", alone, readings, False),
            ("read again where unsure (the app)", recognizer, readings, False),
            ("the grammar, read again where unsure", recognizer, formulas, True),
        ):
            looks = reader.look_again(batch, log_probs, first, grammar=grammar)
            read[column] = [
                look.text if look else h.text for h, look in zip(first, looks, strict=True)
            ]
        for column, texts in read.items():
            report = reports[column]
            for truth, text in zip(truths, texts, strict=True):
                report.add(report.total, truth, text)
        batch.clear()
        truths.clear()

    for index in range(count):
        item, _, image = make_one(config, index)
        batch.append(image)
        truths.append(item.text)
        if len(batch) == 256:
            flush()
    if batch:
        flush()
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(SHIPPED_MODEL))
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=424242)
    parser.add_argument(
        "--ink-percentile",
        type=float,
        default=preprocess.INK_PERCENTILE,
        help="normalisation's ink level (0: the darkest 0.5 %% of the image, the former "
        "stretch); default %(default)s",
    )
    parser.add_argument(
        "--captcha-printed-share",
        type=float,
        default=synth.CAPTCHA_PRINTED_SHARE,
        help="share of captcha images that also draw with the printed typefaces (0: the "
        "Baidu look-alike fonts only, as before the printed style); default %(default)s",
    )
    options = parser.parse_args()
    preprocess.INK_PERCENTILE = options.ink_percentile
    synth.CAPTCHA_PRINTED_SHARE = options.captcha_printed_share
    recognizer = Recognizer.load(options.model)
    alone = Recognizer.load(options.model, referee=False)
    rows = []
    for style, form in [
        ("captcha", "level1"),
        ("captcha", "mixed"),
        ("fonts", "mixed"),
        ("strokes", "mixed"),
        ("printed", "mixed"),
        ("mixed", "mixed"),
    ]:
        start = time.perf_counter()
        reports = score(recognizer, alone, style, form, options.count, options.seed)
        report = reports["greedy"]
        print(
            f"{style}/{form}: "
            + ", ".join(f"{column} {reports[column].accuracy:.4%}" for column in COLUMNS)
            + f" in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
        worst = ", ".join(
            f"{a or '∅'}→{b or '∅'} ×{n}" for (a, b), n in report.confusions.most_common(4)
        )
        rows.append(
            f"| {style} | {form} | {report.total:,} | {report.accuracy:.2%} | "
            f"{report.cer:.3%} | "
            + " | ".join(f"{reports[column].accuracy:.2%}" for column in COLUMNS[1:])
            + f" | {worst or '—'} |"
        )
    print(
        f"Model {Path(options.model).name}, {options.count:,} images a row, seed {options.seed}, "
        f"ink percentile {options.ink_percentile:g}, captcha images drawing with the printed "
        f"typefaces too: {options.captcha_printed_share:g}.\n"
    )
    print(
        "| style | formulas | images | greedy: sequence accuracy | CER | "
        + " | ".join(COLUMNS[1:])
        + " | most confused |"
    )
    print("| --- | --- | ---: | ---: | ---: |" + " ---: |" * (len(COLUMNS) - 1) + " --- |")
    print("\n".join(rows))
    if REAL.is_dir():
        lines = (REAL / "SOURCES.tsv").read_text().splitlines()[1:]
        print("\n| real image | truth | read |")
        print("| --- | --- | --- |")
        for line in lines:
            name, truth = line.split("\t")[:2]
            read = recognizer.recognize(read_image(REAL / name)).text
            print(f"| {name} | `{truth}` | `{read}` {'✓' if read == truth else '✗'} |")


if __name__ == "__main__":
    main()
