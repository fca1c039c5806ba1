"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers the user's files reach first:
the image-size reader, both image decoders and the zip reader. Optional: `pip install
'labelscope[fuzz]'`. Where the Hypothesis tests (tests/test_fuzz.py) mutate at random,
libFuzzer keeps the inputs that reach new code, so it gets deeper into the headers.

    python -m benchmarks.fuzz_coverage TARGET [-runs=200000] [-max_len=4096] [CORPUS_DIR]

TARGET is one of: sizes, decode, pets, zip. Any exception other than the parser's own
clear error (ImageProblem, SourceError) is a crash: libFuzzer stops and writes the input
to `crash-<hash>` in the current folder. The seeds are real files of every format and the
bombs of `tests/hostile_data.py`.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path


def _seeds() -> list[bytes]:
    from tests.test_fuzz import SEEDS, _kaggle_zip

    return [*SEEDS, _kaggle_zip()]


def _sizes(data: bytes) -> None:
    from core.image_sizes import header_size
    from core.images import sniff_format

    fmt = sniff_format(data[:16])
    if fmt:
        header_size(data, fmt)


def _decode(data: bytes) -> None:
    from core.images import ImageProblem, decode

    try:
        image = decode(data, "fuzzed")
    except ImageProblem:
        return
    assert image.shape[0] * image.shape[1] <= 60_000_000


def _pets(data: bytes) -> None:
    from core.images import ImageProblem
    from core.pets.image_decoding import decode_pet

    with contextlib.suppress(ImageProblem):
        decode_pet(data, "fuzzed", max_side=128)


_FOLDER = Path(tempfile.mkdtemp(prefix="labelscope-fuzz-"))


def _zip(data: bytes) -> None:
    from core.images import ImageProblem
    from core.pets.image_decoding import decode_pet
    from core.pets.sources import Source, SourceError

    path = _FOLDER / "fuzzed.zip"
    path.write_bytes(data)
    try:
        source = Source(path, _FOLDER / "cache")
    except SourceError:
        return
    try:
        for name in list(source.container("").names())[:20]:
            with contextlib.suppress(SourceError, ImageProblem):
                decode_pet(source.read(name), name, max_side=64)
    except SourceError:
        pass
    finally:
        source.close()


TARGETS = {"sizes": _sizes, "decode": _decode, "pets": _pets, "zip": _zip}


def main() -> None:
    import atheris

    import core

    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(__doc__)
    with atheris.instrument_imports(include=["core"]):  # coverage of our parsers only
        import core.image_sizes
        import core.images
        import core.pets.image_decoding
        import core.pets.sources  # noqa: F401
    target = TARGETS[sys.argv[1]]
    args = [sys.argv[0], *sys.argv[2:]]
    if not any(not a.startswith("-") for a in args[1:]):  # no corpus given: the seeds
        corpus = _FOLDER / "seeds"
        corpus.mkdir()
        for i, seed in enumerate(_seeds()):
            (corpus / f"seed{i}").write_bytes(seed)
        args.append(str(corpus))
    atheris.Setup(args, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
