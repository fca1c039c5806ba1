"""Hostile and huge input: the bomb corpus through every entry point, two processes on one
dataset, a damaged store and a full disk.

    python -m benchmarks.hostile [--race 10] [--damage 20] [--full 20]

1. Bombs: each image bomb of `tests/hostile_data.py` (every accepted format, headers that
   lie) through each decoding entry: the formula reader's file entry (`read_image`, what
   the Read tab, the Folder tab, Evaluate and `formula recognize` use), pasted bytes
   (`decode`), the Pets decoder (`decode_pet`: thumbnails, scan, training, `pets info
   --check`) and a zip member read in place; then the zip bombs through `pets info --check`.
   Each case runs in a fresh process: the time from the call to the refusal, and the peak
   memory above the process's resting memory just before the call (ru_maxrss).
2. Race: two `pets scan` processes started together on one dataset of 24 images, `--race`
   times, while a third process relabels images: images scored (each must be scored once),
   edits made and found afterwards, tracebacks.
3. Damage: a store with edits is closed, then one random page of its file is overwritten
   (`--damage` trials) and it is opened again: edits that survive, with its backup and with
   the backup deleted.
4. Store checks: what SQLite's quick check (on every open) and the backup (every open and
   close) cost on a store of the full Kaggle size: 37,500 images, each with decoding facts,
   one model's scan results and two scores, and 2,000 edits.
5. Full disk: edits until the store's file may grow no more (SQLite's max_page_count, a
   full disk as SQLite sees it) at a random point (`--full` trials): every acknowledged edit
   must be in the store when it is opened again; and a checkpoint whose write fails with
   ENOSPC must leave the previous one loadable.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.harness import machine

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

_CASE = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    from core.images import ImageProblem, decode, read_image
    from core.pets.image_decoding import decode_pet
    from core.pets.sources import Source, SourceError
    entry, path = sys.argv[1], Path(sys.argv[2])
    data = path.read_bytes() if entry != "zip member" else b""
    calls = {
        "read_image": lambda: read_image(path),
        "paste": lambda: decode(data, "pasted image"),
        "decode_pet": lambda: decode_pet(data, path.name, max_side=256),
        "zip member": lambda: decode_pet(Source(path).read("train/cat.1.jpg"), "m", max_side=256),
    }
    rest = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        calls[entry]()
        outcome = "DECODED"
    except (ImageProblem, SourceError) as problem:
        outcome = problem.kind
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"outcome": outcome, "seconds": seconds, "mb": (peak - rest) / 1024}))
    """
)


_UNGUARDED = textwrap.dedent(
    """
    import json, resource, sys, time
    import cv2, numpy as np
    data = open(sys.argv[1], "rb").read()
    rest = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = "DECODED" if image is not None else "refused"
    print(json.dumps({"outcome": outcome, "seconds": seconds, "mb": (peak - rest) / 1024}))
    """
)


def bomb_rows(folder: Path) -> list[str]:
    import zipfile

    from tests.hostile_data import image_bombs

    rows = [
        "| bomb | entry | outcome | seconds | MB above resting |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, data in image_bombs().items():
        path = folder / name
        path.write_bytes(data)
        member = folder / f"{name}.zip"
        with zipfile.ZipFile(member, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("train/cat.1.jpg", data)
        entries = ["read_image", "paste", "decode_pet", "zip member"]
        if name == "bomb.png":
            entries.insert(0, "baseline")
        for entry in entries:
            target = member if entry == "zip member" else path
            # the baseline: OpenCV's decoder with its own default limit (2³⁰ pixels) and no
            # guard before it, which is what a file Pillow gave up on reached before
            script = (
                [_UNGUARDED, str(target)] if entry == "baseline" else [_CASE, entry, str(target)]
            )
            done = subprocess.run(
                [sys.executable, "-c", *script],
                env={**ENV, "OPENCV_IO_MAX_IMAGE_PIXELS": str(1 << 30)},
                capture_output=True,
                text=True,
                timeout=600,
            )
            found = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(
                f"| {name} | {entry} | {found['outcome']} | {found['seconds']:.4f} | "
                f"{found['mb']:.0f} |"
            )
            print(rows[-1], flush=True)
    return _condensed(rows[2:])


def _condensed(rows: list[str]) -> list[str]:
    """One line per bomb over its entries (the slowest refusal, the most memory), and the
    baseline's own line."""
    by: dict[str, list[tuple[str, str, float, float]]] = {}
    for row in rows:
        name, entry, outcome, seconds, mb = (c.strip() for c in row.strip("|").split("|"))
        by.setdefault(name, []).append((entry, outcome, float(seconds), float(mb)))
    out = [
        "| bomb | entries | outcome | slowest refusal (s) | most MB above resting |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for name, items in by.items():
        for entry, outcome, seconds, mb in items:
            if entry == "baseline":
                out.append(f"| {name} | baseline: OpenCV's decoder alone | {outcome} | "
                           f"{seconds:.4f} | {mb:.0f} |")  # fmt: skip
        rest = [i for i in items if i[0] != "baseline"]
        outcomes = ", ".join(sorted({i[1] for i in rest}))
        out.append(
            f"| {name} | {', '.join(i[0] for i in rest)} | {outcomes} | "
            f"{max(i[2] for i in rest):.4f} | {max(i[3] for i in rest):.0f} |"
        )
    return out


def zip_rows(folder: Path) -> list[str]:
    from tests.hostile_data import competition_zip_with_bomb, many_entries_zip, zip_bomb

    cases = {
        "member declaring 5 GB": zip_bomb(folder / "member.zip", inflated=5 << 30),
        "300,000 entries": many_entries_zip(folder / "many.zip", 300_000),
        "inner train.zip inflating 1,000×": competition_zip_with_bomb(folder / "inner.zip"),
    }
    rows = [
        "| zip | `pets info --check` status | what it says | seconds (whole command) | peak MB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, path in cases.items():
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "core.cli", "pets", "info",
             str(path), "--check", "--show-skipped"],
            env={**ENV, "LABELSCOPE_DATA_DIR": str(folder / "data")},
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
        seconds, kb = done.stderr.strip().splitlines()[-1].split()
        said = next(
            (
                line.strip()
                for line in (done.stdout + done.stderr).splitlines()
                if "refused" in line
            ),
            "",
        )
        rows.append(
            f"| {name} | {done.returncode} | {said[:110]} | {float(seconds):.2f} | "
            f"{int(kb) / 1024:.0f} |"
        )
        print(rows[-1], flush=True)
    return rows


_EDITOR = textwrap.dedent(
    """
    import sys
    from core.jobs import CancelToken, drive
    from core.pets.dataset import list_dataset
    from core.pets.labelstore import LabelStore
    store = LabelStore.open(drive(list_dataset(sys.argv[1], CancelToken()), CancelToken()))
    for i in range(int(sys.argv[2])):
        row = (i * 7) % len(store)
        store.set_note(row, f"note {i}")
        print(row, f"note {i}", flush=True)
    store.close()
    """
)


def race_rows(folder: Path, trials: int) -> list[str]:
    from core.jobs import CancelToken, drive
    from core.pets.dataset import list_dataset
    from core.pets.labelstore import LabelStore
    from tests.pets_data import make_pets

    totals = {"scored": 0, "twice": 0, "busy": 0, "tracebacks": 0, "edits": 0, "lost": 0}
    for trial in range(trials):
        root = make_pets(folder / f"race{trial}", cats=12, dogs=12, tests=0)
        env = {**ENV, "LABELSCOPE_DATA_DIR": str(folder / f"data{trial}")}
        scan = [sys.executable, "-m", "core.cli", "pets", "scan", str(root), "--offline"]
        processes = [
            subprocess.Popen(
                scan, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        editor = subprocess.run(
            [sys.executable, "-c", _EDITOR, str(root), "30"],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        outputs = [p.communicate(timeout=600) for p in processes]
        for _out, err in outputs:
            totals["busy"] += "already running on this dataset" in err
            totals["tracebacks"] += "Traceback" in err
        totals["tracebacks"] += "Traceback" in editor.stderr
        store = LabelStore.open(drive(list_dataset(root, CancelToken()), CancelToken()))
        rows = store._db.execute("SELECT count(*), count(DISTINCT sample_id) FROM scan_results")
        count, distinct = rows.fetchone()
        images = store._db.execute("SELECT sum(images) FROM scans").fetchone()[0] or 0
        totals["scored"] += distinct
        totals["twice"] += (count - distinct) + max(0, images - distinct)
        made = [line.split(" ", 1) for line in editor.stdout.splitlines()]
        last = {int(row): note for row, note in made}
        totals["edits"] += len(made)
        totals["lost"] += sum(store.note(row) != note for row, note in last.items())
        store.close()
    return [
        f"{trials} trials of two scans started together (24 images each) and an editor: "
        f"{totals['scored']:,} images scored of {24 * trials:,}, {totals['twice']} scored "
        f"twice, {totals['busy']} scans told another was running, {totals['edits']:,} edits "
        f"made, {totals['lost']} lost, {totals['tracebacks']} tracebacks."
    ]


def damage_rows(folder: Path, trials: int) -> list[str]:
    from core.jobs import CancelToken, drive
    from core.pets.dataset import list_dataset
    from core.pets.labelstore import LabelStore
    from tests.pets_data import make_pets

    root = make_pets(folder / "damage", cats=100, dogs=100, tests=0)
    listing = drive(list_dataset(root, CancelToken()), CancelToken())
    rng = random.Random(0)
    kept: dict[bool, list[float]] = {True: [], False: []}
    found = 0
    for trial in range(2 * trials):
        with_backup = trial % 2 == 0
        store = LabelStore.open(listing)
        store._db.execute("DELETE FROM edits")  # a fresh start each trial
        store._load()
        edited = rng.sample(range(len(store)), 60)
        for row in edited:
            store.set_label([row], "dog" if store.label[row] == 1 else "cat")
        wanted = store.label.copy()
        path = store.path
        store.close()
        if not with_backup:
            path.with_name(path.name + ".backup").unlink()
        data = bytearray(path.read_bytes())
        pages = len(data) // 4096
        page = rng.randrange(1, pages)
        data[page * 4096 : (page + 1) * 4096] = rng.randbytes(4096)
        path.write_bytes(bytes(data))
        store = LabelStore.open(listing)
        found += store.recovery is not None
        kept[with_backup].append(sum(store.label[r] == wanted[r] for r in edited) / len(edited))
        store.close()
        for stale in path.parent.glob("*.damaged-*"):
            stale.unlink()
    mean = {k: sum(v) / len(v) for k, v in kept.items()}
    full = {k: sum(x == 1 for x in v) for k, v in kept.items()}
    return [
        f"{trials} trials each: one random page of a 200-image store with 60 edits "
        f"overwritten after closing ({found} of {2 * trials} found damaged on opening; an "
        f"overwritten free page is harmless). With its backup: {mean[True]:.1%} of the edits "
        f"kept on average, all of them in {full[True]} of {trials}. Backup deleted: "
        f"{mean[False]:.1%} kept on average, all in {full[False]} of {trials}."
    ]


def store_cost_rows(folder: Path) -> list[str]:
    import sqlite3
    import time

    from core.pets.labelstore import _SCHEMA
    from core.pets.store_recovery import back_up, damage

    path = folder / "big.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_SCHEMA)
    n = 37_500
    top = ",".join(str(c) for c in range(10))
    probs = ",".join("0.1" for _ in range(10))
    db.execute("BEGIN")
    for i in range(n):
        split, name = ("train", f"cat.{i}.jpg") if i < 25_000 else ("test", f"{i}.jpg")
        db.execute(
            "INSERT INTO samples(id, split, path, file_label) VALUES (?, ?, ?, ?)",
            (i + 1, split, f"train.zip!train/{name}", "cat" if split == "train" else None),
        )
        db.execute(
            "INSERT INTO facts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (i + 1, "123:456", 25_000, 500, 374, "", None, None),
        )
        db.execute(
            "INSERT INTO scan_results VALUES (?, ?, ?, ?, ?, ?, ?)",
            (i + 1, "efficientnet_lite0", top, probs, 0.4, 0.5, 0.01),
        )
        for score in ("label_quality", "label_issue"):
            db.execute("INSERT INTO scores VALUES (?, ?, ?)", (i + 1, score, 0.5))
        if i < 2000:
            db.execute("INSERT INTO edits(sample_id, label, time) VALUES (?, 'dog', 0)", (i + 1,))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size / 1e6
    started = time.perf_counter()
    found = damage(path)
    check = time.perf_counter() - started
    started = time.perf_counter()
    back_up(db, path)
    backup = time.perf_counter() - started
    db.close()
    return [
        f"A store of 37,500 images with facts, one scan and two scores ({size:.1f} MB): quick "
        f"check {check * 1000:.0f} ms ({found or 'sound'}), backup {backup * 1000:.0f} ms."
    ]  # fmt: skip


def full_disk_rows(folder: Path, trials: int) -> list[str]:
    import errno

    from core import checkpoints
    from core.jobs import CancelToken, JobError, drive
    from core.pets.dataset import list_dataset
    from core.pets.labelstore import LabelStore
    from tests.pets_data import make_pets

    root = make_pets(folder / "full", cats=50, dogs=50, tests=0)
    listing = drive(list_dataset(root, CancelToken()), CancelToken())
    rng = random.Random(1)
    acknowledged = lost = refused = 0
    for trial in range(trials):
        store = LabelStore.open(listing)
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages + rng.randrange(2, 40)}")
        done: dict[int, str] = {}
        for i in range(200):
            row = rng.randrange(len(store))
            try:
                store.set_note(row, f"trial {trial} edit {i} " + "x" * rng.randrange(2000))
                done[row] = store.note(row)
            except JobError:
                refused += 1
        store.close()
        again = LabelStore.open(listing)
        acknowledged += len(done)
        lost += sum(again.note(row) != note for row, note in done.items())
        again.close()
    target = folder / "last.pt"
    checkpoints.save(target, {"step": 1}, "bench")
    real = os.fsync

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    os.fsync = full
    try:
        checkpoints.save(target, {"step": 2}, "bench")
        said = "saved (unexpected)"
    except checkpoints.CheckpointError as error:
        said = error.message
    finally:
        os.fsync = real
    intact = checkpoints.load(target, "bench")["step"] == 1
    return [
        f"{trials} trials of 200 edits with the store's file full after 2–40 more pages: "
        f"{acknowledged:,} edits acknowledged, {lost} lost, {refused:,} refused with "
        "'Not saved: the disk … is full'.",
        f"A checkpoint written onto a full disk: “{said}”; previous checkpoint loadable: {intact}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--race", type=int, default=10)
    parser.add_argument("--damage", type=int, default=20)
    parser.add_argument("--full", type=int, default=20)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        os.environ["LABELSCOPE_DATA_DIR"] = str(folder / "data")
        out = bomb_rows(folder) + [""] + zip_rows(folder) + [""]
        out += race_rows(folder, args.race) + [""]
        out += damage_rows(folder, args.damage) + [""] + store_cost_rows(folder) + [""]
        out += full_disk_rows(folder, args.full)
    print()
    print("\n".join(out))


if __name__ == "__main__":
    main()
