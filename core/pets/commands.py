"""`labelscope pets …`: the Dogs vs. Cats data from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.console import run_in_terminal
from core.jobs import JobError

EXIT_OK, EXIT_ERROR = 0, 1


def add_parsers(pets_commands: argparse._SubParsersAction) -> None:
    info = pets_commands.add_parser(
        "info",
        help="count a dataset's images and list the problems found",
        description="List a Dogs vs. Cats dataset (a folder with train/ and test/, the "
        "train.zip and test.zip files, the competition zip, or cats/ and dogs/ folders) and "
        "count its images per split and label. Reads names only, unless --check.",
    )
    info.add_argument("folder", help="the dataset: a folder or a zip file")
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    info.add_argument(
        "--check",
        action="store_true",
        help="also decode every image (in parallel) and list each one that fails, with the "
        "reason; exits with status 1 when any does",
    )
    info.add_argument(
        "--show-skipped", action="store_true", help="list the files that were skipped and why"
    )
    export = pets_commands.add_parser(
        "export",
        help="write the effective labels, the excluded files or an ImageFolder tree",
        description="Export the dataset as edited in Labelscope: file labels overridden by "
        "your edits, minus the images you excluded. The images themselves are never changed.",
    )
    export.add_argument("folder", help="the dataset: a folder or a zip file")
    what = export.add_mutually_exclusive_group(required=True)
    what.add_argument("--labels", metavar="CSV", help="the effective train labels as CSV")
    what.add_argument("--excluded", metavar="TXT", help="the excluded files, one per line")
    what.add_argument(
        "--imagefolder",
        metavar="DIR",
        help="train/cat, train/dog and test/ folders of hard links (copies where links "
        "cannot be made)",
    )


def run(args: argparse.Namespace) -> int:
    if args.pets_command == "info":
        return _info(args)
    if args.pets_command == "export":
        return _export(args)
    raise JobError(f"unknown pets command {args.pets_command!r}")


def _info(args: argparse.Namespace) -> int:
    from core.pets.dataset import list_dataset
    from core.pets.sources import Source
    from core.pets.thumbnails import check_images

    quiet = args.json
    stream = sys.stderr
    listing = run_in_terminal(lambda token: list_dataset(args.folder, token), stream=stream)
    counts = listing.counts()
    facts: dict[str, object] = {
        "root": str(listing.root),
        "layout": listing.layout,
        "zipped": listing.zipped,
        "train": {"cat": counts["cat"], "dog": counts["dog"]},
        "test": counts["test"],
        "skipped": [{"path": p, "reason": r} for p, r in listing.skipped],
    }
    problems = []
    if args.check:
        source = Source(listing.root)
        try:
            paths = [s.path for s in listing.samples]
            found = run_in_terminal(lambda token: check_images(source, paths, token), stream=stream)
        finally:
            source.close()
        problems = [
            {"path": t.path, "kind": t.facts.problem_kind, "reason": t.facts.problem}
            for t in sorted(found, key=lambda t: t.path)
        ]
        facts["problems"] = problems
    if quiet:
        print(json.dumps(facts, indent=2))
    else:
        print(
            f"{listing.root} ({listing.layout} layout"
            f"{', read from zip files' if listing.zipped else ''}): {listing.summary()}"
        )
        if args.show_skipped:
            for path, reason in listing.skipped:
                print(f"  skipped {path}: {reason}")
        if args.check:
            if problems:
                print(f"{len(problems):,} images cannot be used:")
                for problem in problems:
                    print(f"  {problem['path']}: {problem['kind']}: {problem['reason']}")
            else:
                print(f"All {len(listing.samples):,} images decode.")
    return EXIT_ERROR if problems else EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from core.pets import exports
    from core.pets.labelstore import open_store

    store, _listing = run_in_terminal(
        lambda token: open_store(args.folder, token), stream=sys.stderr
    )
    try:
        if args.labels:
            count = exports.export_labels(store, Path(args.labels))
            print(f"Wrote {count:,} labels to {args.labels}")
        elif args.excluded:
            count = exports.export_excluded(store, Path(args.excluded))
            print(f"Wrote {count:,} excluded files to {args.excluded}")
        else:
            target = Path(args.imagefolder)
            linked, copied = run_in_terminal(
                lambda token: exports.export_imagefolder(store, target, token), stream=sys.stderr
            )
            print(f"Wrote {target}: {linked:,} hard links, {copied:,} copies")
    finally:
        store.close()
    return EXIT_OK
