"""How formula recognisers read images that went through what real images go through:
binarised (several methods, thin, normal and thick strokes), read with each optional
preprocessing step of the app, printed in font families no style draws with, and the four
real Baidu samples under every step and every binarisation.

    python -m benchmarks.formula_robustness --baseline OLD.pt [--model NEW.pt] [--count 1000]
        [--seed 737373] [--without STEP] [--padded] [--one-look] [--no-referee]

Every model reads the same images in the same run; the first column is the baseline, read
with the app's default steps less any `--without` names (the pipeline before a step), and
with `--padded` its batches as one padded tensor (before each image read as alone), with
`--one-look` each image once (before unsure readings were read again at other widths), with
`--no-referee` without the shipped large model's say where the widths disagree. The images
come from seed 737373, which no training run uses (`--seed` draws others).
Binarisation thresholds a global level at 30 %, 50 %, 70 % and 90 % of the way from the ink
to the paper (`preprocess.levels`; 90 % keeps nearly everything that is not paper),
Otsu's, the app's Gaussian adaptive threshold (block 31, offset 10), and two methods that
training never applies: a mean adaptive threshold (block 25, offset 15) and the triangle
method. Strokes are thinned or thickened with a 3×3 cross, a kernel shape training never
uses (it uses squares and rectangles). The captcha drawing pastes pale glyphs under noise dots
of full colour, so a threshold sometimes keeps the dots and drops the formula: each binarised
row is also scored on the images whose formula the binarisation kept (at least half of the
glyphs' pixels, found by drawing the same image without its dots), the only ones a user
would label. The unseen font families
(`core.formula.fonts.UNSEEN_FONTS`) are found where Debian installs them, or under
`--unseen-fonts`; assets/fonts/README.md gives the install line. They are read as the
printed style sets them, and in four layouts of documents and screens (`LAYOUTS`): spaced,
cut out to the ink, small on a large page, and in small print; their bold and italic faces
(`UNSEEN_OTHER_FACES`) as set and cut out to the ink.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from benchmarks.formula_margins import with_margins
from core.formula import expressions, fonts, preprocess, synth
from core.formula.evaluation import EvalReport
from core.formula.generate import GenerateConfig, make_one
from core.formula.recognizer import SHIPPED_MODEL, Recognizer
from core.images import read_image

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "formula_samples"
SEED = 737373
CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
#: The preprocessing a user may add in the Read and Folder tabs, one at a time, then the
#: combinations the usual cleaning recipe suggests.
STEP_SETS: tuple[tuple[str, ...], ...] = (
    ("median",),
    ("gaussian",),
    ("otsu",),
    ("adaptive",),
    ("open",),
    ("close",),
    ("deskew",),
    ("crop",),
    ("otsu", "close"),
    ("median", "otsu", "open", "close"),
)


# ------------------------------------------------------------------ what users do to images
def _gray(image: np.ndarray) -> np.ndarray:
    return preprocess.to_gray(image)


def global_at(share: float) -> Callable[[np.ndarray], np.ndarray]:
    def apply(image: np.ndarray) -> np.ndarray:
        gray = _gray(image)
        ink, _, paper, _ = preprocess.levels(gray)
        _, binary = cv2.threshold(gray, ink + share * (paper - ink), 255, cv2.THRESH_BINARY)
        return binary

    return apply


def otsu(image: np.ndarray) -> np.ndarray:
    return preprocess.binarize_otsu(image)


def adaptive_gaussian(image: np.ndarray) -> np.ndarray:
    return preprocess.binarize_adaptive(image)


def adaptive_mean(image: np.ndarray) -> np.ndarray:
    return cv2.adaptiveThreshold(
        _gray(image), 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 25, 15
    )


def triangle(image: np.ndarray) -> np.ndarray:
    _, binary = cv2.threshold(_gray(image), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_TRIANGLE)
    return binary


BINARISE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "global 30 %": global_at(0.3),
    "global 50 %": global_at(0.5),
    "global 70 %": global_at(0.7),
    "global 90 %": global_at(0.9),
    "Otsu": otsu,
    "adaptive (Gaussian)": adaptive_gaussian,
    "adaptive (mean), unseen": adaptive_mean,
    "triangle, unseen": triangle,
}
STROKES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "thin": lambda binary: cv2.dilate(binary, CROSS),  # ink is dark: the paper grows
    "normal": lambda binary: binary,
    "thick": lambda binary: cv2.erode(binary, CROSS),
}


# ----------------------------------------------------------------------------- scoring
@dataclass
class Row:
    section: str
    name: str
    reports: list[EvalReport] = field(default_factory=list)
    #: the same readings scored on the images whose formula survived binarisation
    kept: list[EvalReport] = field(default_factory=list)


def glyph_masks(config: GenerateConfig, count: int) -> list[np.ndarray]:
    """Where the symbols of each image of `drawn` are: the same image drawn without its
    noise dots (drawn last, so nothing else changes), pixels nearer the ink than the paper."""
    dots = synth._dots
    synth._dots = lambda *_args: None  # the benchmark's own redraw; the renderer is unchanged
    try:
        plain = [np.asarray(make_one(config, i)[2]) for i in range(count)]
    finally:
        synth._dots = dots
    masks = []
    for image in plain:
        gray = preprocess.to_gray(image)
        ink, _, paper, _ = preprocess.levels(gray)
        masks.append(gray < (ink + paper) / 2)
    return masks


def formula_kept(binary: np.ndarray, mask: np.ndarray) -> bool:
    """Whether a binarised image (ink 0) keeps at least half of the glyphs' pixels."""
    return bool(mask.any()) and float((binary[mask] == 0).mean()) >= 0.5


@dataclass(frozen=True)
class Reader:
    """A recogniser, the default steps it reads with (the app's, or fewer: `--without`),
    whether each image of a batch reads as it reads alone (the app's way) or the batch as
    one padded tensor (`--padded`, as before), and whether an unsure reading is read again
    at other widths (the app's way) or not (`--one-look`, as before)."""

    recognizer: Recognizer
    defaults: frozenset[str] = preprocess.DEFAULT
    alone: bool = True
    look_again: bool = True


def add_without(parser: argparse.ArgumentParser) -> None:
    """`--without STEP`: a default step the first model reads without; `--padded`: the
    first model reads its batches as one padded tensor; `--one-look`: the first model reads
    each image once."""
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        choices=sorted(preprocess.DEFAULT - {"resize", "normalize"}),
        help="a default step the first model reads without (the pipeline before it)",
    )
    parser.add_argument(
        "--padded",
        action="store_true",
        help="the first model reads each batch as one padded tensor, its narrower images "
        "reading the padding too (as before each image read as it reads alone)",
    )
    parser.add_argument(
        "--one-look",
        action="store_true",
        help="the first model takes each greedy reading as it is, unsure or not (as before "
        "unsure readings were read again at other widths)",
    )
    parser.add_argument(
        "--no-referee",
        action="store_true",
        help="the first model's second look does not ask the shipped large model where its "
        "widths disagree (as before it did)",
    )


def readers(
    paths: Sequence[str | Path],
    without: Sequence[str],
    padded: bool = False,
    one_look: bool = False,
    no_referee: bool = False,
) -> tuple[list[Reader], list[str]]:
    """A Reader and a column name for each model; the first reads without `without`, its
    batches padded with `padded`, each image once with `one_look`, and without the shipped
    large model's say with `no_referee`."""
    found = [
        Reader(Recognizer.load(p, referee=not (no_referee and i == 0))) for i, p in enumerate(paths)
    ]
    first = found[0].recognizer
    found[0] = Reader(first, preprocess.DEFAULT - set(without), not padded, not one_look)
    names = [Path(p).name for p in paths]
    if without:
        names[0] += f" without {', '.join(without)}"
    if padded:
        names[0] += ", padded batches"
    if one_look:
        names[0] += ", one look"
    if no_referee:
        names[0] += ", no referee"
    return found, names


def read_all(
    reader: Reader, images: Sequence[np.ndarray], steps: Iterable[str] | None = None
) -> list[str]:
    texts = []
    enabled = set(steps or ()) | reader.defaults
    for start in range(0, len(images), 256):
        batch = list(images[start : start + 256])
        texts += reader.recognizer.read_batch(
            batch, look_again=reader.look_again, steps=enabled, alone=reader.alone
        )
    return texts


def score(
    recognizers: Sequence[Reader],
    images: Sequence[np.ndarray],
    truths: Sequence[str],
    steps: Iterable[str] | None = None,
    subset: Sequence[bool] | None = None,
) -> tuple[list[EvalReport], list[EvalReport]]:
    """Each model's report on every image, and on the images `subset` marks (if given)."""
    reports, kept = [], []
    for recognizer in recognizers:
        report, part = EvalReport(), EvalReport()
        reads = read_all(recognizer, images, steps)
        for index, (truth, read) in enumerate(zip(truths, reads, strict=True)):
            report.add(index, truth, read)
            if subset is not None and subset[index]:
                part.add(index, truth, read)
        reports.append(report)
        kept.append(part)
    return reports, kept if subset is not None else []


def drawn(style: str, form: str, count: int) -> tuple[list[np.ndarray], list[str]]:
    config = GenerateConfig(count, style=style, form=form, seed=SEED)
    items = [make_one(config, i) for i in range(count)]
    return [image for _, _, image in items], [item.text for item, _, _ in items]


def printed_in(
    fonts: Sequence[Path], form: str, count: int, offset: int = 0, layout: str = "as set"
) -> tuple[list[np.ndarray], list[str]]:
    """`count` formulas printed in `fonts` (the printed style's layout and colours), laid out
    as `LAYOUTS` says."""
    images, truths = [], []
    for index in range(count):
        rng = synth.rng_for(SEED + 1, offset + index)
        text = expressions.sample(rng, form).text
        drawn = synth.spaced(text, rng) if layout == "spaced" else text
        image = synth.render_printed(drawn, rng, synth.auto_width(drawn), synth.HEIGHT, fonts)
        image = np.asarray(image.convert("RGB"))
        if layout == "cropped to the ink":
            image = to_the_ink(image, rng.randint(0, 2))
        elif layout == "small on a large page":
            image = with_margins(image, rng, scale=3.0)
        elif layout == "in small print":
            height = rng.randint(*SMALL_PRINT)
            width = max(8, round(image.shape[1] * height / image.shape[0]))
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        images.append(image)
        truths.append(text)
    return images, truths


#: How the unseen families' formulas are laid out: as the printed style sets them; with
#: spaces around the operators and `=`; cut out to their ink, 0–2 px around it (as a tight
#: crop or a screenshot); on a page of paper 1.5–6 line heights to each side; and in small
#: print, the whole image `SMALL_PRINT` px high (a screenshot of 10–12 pt text), which the
#: reader scales up.
LAYOUTS = ("as set", "spaced", "cropped to the ink", "small on a large page", "in small print")
SMALL_PRINT = (18, 26)


def to_the_ink(image: np.ndarray, edge: int) -> np.ndarray:
    """`image` cut to the pixels darker than halfway from its paper to its ink, `edge` px
    of paper around them."""
    gray = preprocess.to_gray(image)
    ink, _, paper, _ = preprocess.levels(gray)
    dark = gray < (ink + paper) / 2
    rows, cols = np.nonzero(dark.any(axis=1))[0], np.nonzero(dark.any(axis=0))[0]
    top, bottom = max(0, rows[0] - edge), min(image.shape[0], rows[-1] + 1 + edge)
    left, right = max(0, cols[0] - edge), min(image.shape[1], cols[-1] + 1 + edge)
    return image[top:bottom, left:right]


def real_samples() -> list[tuple[str, np.ndarray, str]]:
    if not REAL.is_dir():
        return []
    rows = [line.split("\t") for line in (REAL / "SOURCES.tsv").read_text().splitlines()[1:]]
    return [(name, read_image(REAL / name), truth) for name, truth, *_ in rows]


def main() -> None:
    global SEED  # `--seed`: what every drawing of this run reads
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="the model to compare against")
    parser.add_argument("--model", action="append", help="models to compare (default shipped)")
    parser.add_argument("--count", type=int, default=1000, help="images a row")
    parser.add_argument(
        "--seed", type=int, default=SEED, help="another draw of the same rows (default %(default)s)"
    )
    parser.add_argument("--unseen-fonts", type=Path, help="folder holding the unseen fonts")
    add_without(parser)
    options = parser.parse_args()
    paths = [options.baseline, *(options.model or [str(SHIPPED_MODEL)])]
    recognizers, names = readers(
        paths, options.without, options.padded, options.one_look, options.no_referee
    )
    count = options.count
    SEED = options.seed
    rows: list[Row] = []

    def add(section: str, name: str, images, truths, steps=None, subset=None) -> None:
        start = time.perf_counter()
        row = Row(section, name, *score(recognizers, images, truths, steps, subset))
        rows.append(row)
        figures = " · ".join(f"{r.accuracy:.2%}" for r in row.reports)
        if row.kept:
            figures += " (formula kept: " + " · ".join(f"{r.accuracy:.2%}" for r in row.kept)
            figures += f", {row.kept[0].total} images)"
        print(
            f"{section} / {name}: {figures} ({time.perf_counter() - start:.0f} s)", file=sys.stderr
        )

    captcha, captcha_truths = drawn("captcha", "level1", count)
    mixed, mixed_truths = drawn("mixed", "mixed", count)
    printed, printed_truths = drawn("printed", "mixed", count)
    clean = [
        ("captcha, level 1", captcha, captcha_truths),
        ("mixed styles and formulas", mixed, mixed_truths),
        ("printed (shipped fonts), mixed", printed, printed_truths),
    ]
    for name, images, truths in clean:
        add("clean", name, images, truths)
    masks = glyph_masks(GenerateConfig(count, style="captcha", form="level1", seed=SEED), count)
    for method, binarise in BINARISE.items():
        binaries = [binarise(im) for im in captcha]
        kept = [formula_kept(b, m) for b, m in zip(binaries, masks, strict=True)]
        for stroke, change in STROKES.items():
            add(
                "binarised captcha, level 1",
                f"{method}, {stroke} strokes",
                [change(b) for b in binaries],
                captcha_truths,
                subset=kept,
            )
    for method in ("Otsu", "adaptive (mean), unseen"):
        binarise = BINARISE[method]
        add(
            "binarised mixed",
            f"{method}, thick strokes",
            [STROKES["thick"](binarise(im)) for im in mixed],
            mixed_truths,
        )
    for steps in STEP_SETS:
        for name, images, truths in clean:
            add(f"with {' + '.join(steps)}", name, images, truths, steps)

    folders = [options.unseen_fonts] if options.unseen_fonts else []
    families = fonts.unseen_font_paths(*folders)
    family_rows: list[Row] = []
    if families:
        all_fonts = [path for paths in families.values() for path in paths]
        for form, label in (("level1", "level 1"), ("equation", "equations")):
            images, truths = printed_in(all_fonts, form, count)
            add("unseen font families", label, images, truths)
        for layout in LAYOUTS[1:]:
            images, truths = printed_in(all_fonts, "mixed", count, offset=20_000, layout=layout)
            add("unseen font families", f"mixed, {layout}", images, truths)
        other = fonts.unseen_font_paths(*folders, faces=fonts.UNSEEN_OTHER_FACES)
        other_faces = [path for paths in other.values() for path in paths]
        if other_faces:
            for layout in ("as set", "cropped to the ink"):
                images, truths = printed_in(other_faces, "mixed", count, 30_000, layout)
                add("unseen families' bold and italic faces", f"mixed, {layout}", images, truths)
        per_family = max(50, count // 5)
        for family, faces in families.items():
            images, truths = [], []
            for form in ("level1", "equation"):
                more, texts = printed_in(faces, form, per_family // 2, offset=10_000)
                images += more
                truths += texts
            reports, _ = score(recognizers, images, truths)
            family_rows.append(Row("unseen family", family, reports))
    else:
        print("No unseen font family found: see assets/fonts/README.md.", file=sys.stderr)

    print(f"{count:,} images a row, seed {SEED}; models: {', '.join(names)} (first: baseline).\n")
    print("| section | images | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in names) + " |")
    for row in rows:
        figures = " | ".join(f"{r.accuracy:.2%}" for r in row.reports)
        print(f"| {row.section} | {row.name} | {figures} |")
    print("\nBinarised rows on the images whose formula the binarisation kept:\n")
    print("| images | kept | " + " | ".join(names) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in names) + " |")
    for row in rows:
        if row.kept:
            figures = " | ".join(f"{r.accuracy:.2%}" for r in row.kept)
            print(f"| {row.name} | {row.kept[0].total} | {figures} |")
    if family_rows:
        print("\n| unseen family | images | " + " | ".join(names) + " |")
        print("| --- | ---: | " + " | ".join("---:" for _ in names) + " |")
        for row in family_rows:
            figures = " | ".join(f"{r.accuracy:.2%}" for r in row.reports)
            print(f"| {row.name} | {row.reports[0].total} | {figures} |")
    print("\n| confusions over every row (truth → read) | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---:" for _ in names) + " |")
    totals = [Counter() for _ in names]
    for row in rows + family_rows:
        for total, report in zip(totals, row.reports, strict=True):
            total.update(report.confusions)
    for pair in (("+", "*"), ("*", "+"), ("*", "-"), ("-", "*")):
        print(f"| `{pair[0]}` → `{pair[1]}` | " + " | ".join(str(t[pair]) for t in totals) + " |")
    worst = min((r for r in rows if r.section != "clean"), key=lambda r: r.reports[-1].accuracy)
    print(f"\nLowest row for {names[-1]}: {worst.section} / {worst.name}.")
    print_costs(rows, names[-1])

    samples = real_samples()
    if samples:
        print("\n| real samples: preprocessing | " + " | ".join(names) + " |")
        print("| --- | " + " | ".join("---" for _ in names) + " |")
        for steps in ((), *STEP_SETS):
            cells = []
            for recognizer in recognizers:
                reads = read_all(recognizer, [im for _, im, _ in samples], steps or None)
                wrong = [
                    f"{name} `{read}`"
                    for (name, _, truth), read in zip(samples, reads, strict=True)
                    if read != truth
                ]
                cells.append(
                    f"{len(samples) - len(wrong)}/{len(samples)}"
                    + (f" ({', '.join(wrong)})" if wrong else "")
                )
            print(f"| {' + '.join(steps) or 'default'} | " + " | ".join(cells) + " |")
        print_real_binarised(recognizers, names, samples)


#: How `preprocess.MEASURED_COSTS` names the clean styles.
COST_STYLES = {
    "captcha, level 1": "captcha images",
    "mixed styles and formulas": "mixed styles",
    "printed (shipped fonts), mixed": "printed ones",
}


def costs(rows: Sequence[Row]) -> dict[str, str]:
    """For each single optional step that reads some clean style worse than the default, in
    the last model's column, what `preprocess.MEASURED_COSTS` says of it."""
    default = {r.name: r.reports[-1].accuracy for r in rows if r.section == "clean"}
    found: dict[str, str] = {}
    for steps in STEP_SETS:
        if len(steps) > 1:
            continue
        parts = []
        for row in rows:
            if row.section != f"with {steps[0]}" or row.name not in COST_STYLES:
                continue
            read, without = row.reports[-1].accuracy, default[row.name]
            if round(read * 1000) < round(without * 1000):
                parts.append(
                    f"{read:.1%} of {COST_STYLES[row.name]} ("
                    + f"{without:.1%}{' without it' if not parts else ''})"
                )
        if parts:
            found[steps[0]] = "the default model reads " + ", ".join(parts)
    return {name: text.replace("%", " %") for name, text in found.items()}


def print_costs(rows: Sequence[Row], name: str) -> None:
    """The optional steps' costs for `preprocess.MEASURED_COSTS`, with any difference from
    what it says now."""
    found = costs(rows)
    print(f"\nOptional steps against the default, {name} (`preprocess.MEASURED_COSTS`):\n")
    for step, text in found.items():
        print(f'- "{step}": "{text}"')
    if not found:
        print("- every step reads each style at least as well as the default")
    stale = sorted(set(found) ^ set(preprocess.MEASURED_COSTS)) + sorted(
        step
        for step in set(found) & set(preprocess.MEASURED_COSTS)
        if found[step] != preprocess.MEASURED_COSTS[step]
    )
    if stale:
        print(f"\n`preprocess.MEASURED_COSTS` differs for: {', '.join(stale)}.")


def print_real_binarised(
    recognizers: Sequence[Reader], names: Sequence[str], samples: Sequence[tuple]
) -> None:
    """The real samples through every binarisation and stroke change of the binarised rows:
    how many readings are exact, by stroke, and which are not."""
    title = f"real samples binarised ({len(BINARISE)} methods each)"
    print(f"\n| {title} | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---" for _ in names) + " |")
    misses: list[list[str]] = [[] for _ in recognizers]
    for stroke, change in STROKES.items():
        cells = []
        for recognizer, missed in zip(recognizers, misses, strict=True):
            images, truths, labels = [], [], []
            for name, image, truth in samples:
                for method, binarise in BINARISE.items():
                    images.append(change(binarise(image)))
                    truths.append(truth)
                    labels.append(f"{name} {method}")
            reads = read_all(recognizer, images)
            wrong = [
                f"{label}, {stroke}: `{read}`"
                for label, truth, read in zip(labels, truths, reads, strict=True)
                if read != truth
            ]
            missed.extend(wrong)
            cells.append(f"{len(images) - len(wrong)}/{len(images)}")
        print(f"| {stroke} strokes | " + " | ".join(cells) + " |")
    for name, missed in zip(names, misses, strict=True):
        print(f"\n{name} misreads: " + ("; ".join(missed) or "none") + ".")


if __name__ == "__main__":
    main()
