"""CTC decoding: Labelscope's beam search against pyctcdecode and fast-ctc-decode, on the
same log-posteriors, at the same beam width; and the cost of an alignment.

Labelscope's search runs compiled (`core/formula/_beam.c`, built by the install) and, for
reference, as the Python loop that stands in for it where no C compiler was found.

    pip install -e ".[bench]"
    pip install --no-deps pyctcdecode pygtrie   # its numpy<2 pin is stricter than it needs
    python -m benchmarks.ctc_decoding [--model M] [--items 256] [--beam 10] [--random]

Log-posteriors come from the shipped model reading freshly drawn images (mixed styles and
formulas); without a model, from synthetic peaky posteriors; with `--random`, from random
logits (T = 48), the hard case, where pruning helps least. A library that does not import
is reported as missing.

A second table times what the Read tab asks for: the 5 best readings with each symbol's
time span (`spans=True`, the default), with the spans computed compiled and, as before, by
the Python Viterbi; against fast-ctc-decode's search returning its best path.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from benchmarks.harness import machine
from core.formula import ctc, decoding
from core.formula.alphabet import SYMBOLS
from core.formula.decoding import beam_search


def random_posteriors(items: int, steps: int = 48) -> tuple[list[np.ndarray], str]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(items):
        logits = rng.normal(size=(steps, 17)) * 1.5
        out.append(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))
    return out, f"random logits (normal, σ = 1.5), T = {steps}"


def posteriors(model: str | None, items: int) -> tuple[list[np.ndarray], str]:
    from core.checkpoints import CheckpointError
    from core.formula.generate import GenerateConfig, make_one
    from core.formula.recognizer import SHIPPED_MODEL, Recognizer

    try:
        recognizer = Recognizer.load(model or SHIPPED_MODEL)
    except CheckpointError as error:  # no model yet: synthetic posteriors
        rng = np.random.default_rng(0)
        out = []
        for _ in range(items):
            logits = rng.normal(size=(45, 17)) * 1.5
            logits[:, 0] += 4
            for t in rng.choice(45, size=9, replace=False):
                logits[t, rng.integers(1, 17)] += 8
            out.append(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))
        return out, f"synthetic peaky posteriors, T = 45 ({error})"
    config = GenerateConfig(items, style="mixed", form="mixed", seed=777)
    images = [make_one(config, i)[2] for i in range(items)]
    inputs = [recognizer.prepare(image) for image in images]
    out = []
    for i in range(0, items, 256):
        out.extend(recognizer.forward(inputs[i : i + 256]))
    steps = sorted(len(lp) for lp in out)
    return out, (
        f"the shipped model on {items} fresh images, T = {steps[0]}–{steps[-1]} "
        f"(median {steps[len(steps) // 2]})"
    )


def timed(decode: Callable[[np.ndarray], str], items: list[np.ndarray]) -> tuple[list[str], float]:
    for lp in items[:10]:
        decode(lp)
    texts, times = [], []
    for lp in items:
        start = time.perf_counter()
        texts.append(decode(lp))
        times.append(time.perf_counter() - start)
    return texts, statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model")
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--random", action="store_true", help="random posteriors")
    options = parser.parse_args()
    if options.random:
        items, source = random_posteriors(options.items)
    else:
        items, source = posteriors(options.model, options.items)
    width = options.beam

    decoders: dict[str, Callable[[np.ndarray], str] | str] = {
        "Labelscope beam_search": lambda lp: (
            (beam_search(lp, width, 1, spans=False) or [None])[0].text
        ),
    }

    def python_search(lp: np.ndarray) -> str:
        return (beam_search(lp, width, 1, spans=False, compiled=False) or [None])[0].text

    if decoding.compiled_search():
        decoders["Labelscope beam_search, Python (no C compiler)"] = python_search
    else:
        decoders["Labelscope beam_search"] = python_search
        print("The compiled search is not built here: Labelscope's row is the Python one.\n")
    try:
        import fast_ctc_decode

        alphabet = "~" + SYMBOLS
        decoders["fast-ctc-decode (Rust)"] = lambda lp: fast_ctc_decode.beam_search(
            np.exp(lp).astype(np.float32), alphabet, beam_size=width
        )[0]
    except ImportError as error:
        decoders["fast-ctc-decode (Rust)"] = f"missing ({error})"
    try:
        from pyctcdecode import build_ctcdecoder

        decoder = build_ctcdecoder([""] + list(SYMBOLS))
        decoders["pyctcdecode"] = lambda lp: decoder.decode(
            lp.astype(np.float32), beam_width=width
        ).replace(" ", "")
    except ImportError as error:
        decoders["pyctcdecode"] = f"missing ({error})"

    ours, ours_ms = timed(decoders["Labelscope beam_search"], items)
    print(f"{time.strftime('%Y-%m-%d')} · {machine()}\n")
    print(f"Posteriors: {source}; beam width {width}.\n")
    print("| decoder | median per item | × Labelscope time | top-1 same as Labelscope |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| Labelscope beam_search | {ours_ms:.3f} ms | 1.00 | — |")
    for name, decode in decoders.items():
        if name == "Labelscope beam_search":
            continue
        if isinstance(decode, str):
            print(f"| {name} | {decode} | | |")
            continue
        texts, ms = timed(decode, items)
        same = sum(a == b for a, b in zip(texts, ours, strict=True)) / len(items)
        print(f"| {name} | {ms:.3f} ms | {ms / ours_ms:.2f} | {same:.2%} |")

    spans_table(items, width)

    alignment = []
    for lp, text in zip(items, ours, strict=True):
        if not text:
            continue
        start = time.perf_counter()
        ctc.occupancy(lp, text)
        ctc.viterbi(lp, text)
        alignment.append(time.perf_counter() - start)
    print(
        f"\nAlignment of one image (occupancy γ + Viterbi path of its top reading): median "
        f"{statistics.median(alignment) * 1e3:.3f} ms over {len(alignment)} images "
        "(goal < 1 ms)."
    )


def spans_table(items: list[np.ndarray], width: int) -> None:
    """The 5 best readings with symbol spans, spans compiled and in Python; fast-ctc-decode
    with its path."""

    def python_spans(lp: np.ndarray) -> str:
        found = beam_search(lp, width, 5, spans=False)
        found = [decoding.with_spans(h, lp, compiled=False) for h in found]
        return found[0].text if found else ""

    cases: dict[str, Callable[[np.ndarray], str]] = {
        "n-best 5, spans compiled": lambda lp: (beam_search(lp, width, 5) or [None])[0].text,
        "n-best 5, spans by the Python Viterbi (before)": python_spans,
    }
    try:
        import fast_ctc_decode

        alphabet = "~" + SYMBOLS
        cases["fast-ctc-decode with its path"] = lambda lp: fast_ctc_decode.beam_search(
            np.exp(lp).astype(np.float32), alphabet, beam_size=width
        )[0]
    except ImportError:
        pass
    base, base_ms = timed(cases["n-best 5, spans compiled"], items)
    print("\n| with spans or paths | median per item | × spans compiled | top-1 same |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| n-best 5, spans compiled | {base_ms:.3f} ms | 1.00 | — |")
    for name, decode in list(cases.items())[1:]:
        texts, ms = timed(decode, items)
        same = sum(a == b for a, b in zip(texts, base, strict=True)) / len(items)
        print(f"| {name} | {ms:.3f} ms | {ms / base_ms:.2f} | {same:.2%} |")


if __name__ == "__main__":
    main()
