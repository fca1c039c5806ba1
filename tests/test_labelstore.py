"""The label store: edits committed as they happen, undo/redo, filters, exports, the
read-only fallback, and edits that survive a process killed mid-write."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.jobs import CancelToken, JobError, drive
from core.pets.dataset import list_dataset
from core.pets.exports import export_excluded, export_imagefolder, export_labels
from core.pets.labelstore import Facts, LabelStore, store_location

ROOT_DIR = Path(__file__).resolve().parents[1]


def make_dataset(root: Path, cats: int = 3, dogs: int = 3, tests: int = 2) -> Path:
    for split, names in (
        ("train", [f"cat.{i}.jpg" for i in range(cats)] + [f"dog.{i}.jpg" for i in range(dogs)]),
        ("test", [f"{i + 1}.jpg" for i in range(tests)]),
    ):
        (root / split).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / split / name).write_bytes(b"\xff\xd8\xff" + name.encode() + b"\xff\xd9")
    return root


def open_store(root: Path) -> LabelStore:
    listing = drive(list_dataset(root, CancelToken()), CancelToken())
    return LabelStore.open(listing)


def fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    return {
        p.relative_to(root).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".labelscope" not in p.parts
    }


def test_the_store_lives_beside_the_data_in_wal_mode(tmp_path: Path):
    store = open_store(make_dataset(tmp_path))
    assert store.path == tmp_path.resolve() / ".labelscope" / "labelscope.sqlite"
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert len(store) == 8
    assert store.counts() == {
        "cats": 3,
        "dogs": 3,
        "test": 2,
        "excluded": 0,
        "edited": 0,
        "flagged": 0,
        "unreadable": 0,
    }


def test_edits_undo_redo_and_persist(tmp_path: Path):
    root = make_dataset(tmp_path)
    before = fingerprint(root)
    store = open_store(root)
    seen: list[list[int]] = []
    store.subscribe(lambda rows: seen.append(rows.tolist()))
    cat0 = store.row_for_path("train/cat.0.jpg")
    dogs = [store.row_for_path(f"train/dog.{i}.jpg") for i in range(3)]

    step = store.set_label([cat0], "dog")
    assert step is not None and step.description == "Label as dog cat.0.jpg"
    assert store.effective_label(cat0) == "dog" and store.edited[cat0]
    assert store.set_label([cat0], "dog") is None  # nothing to change
    bulk = store.set_excluded(dogs, True)
    assert bulk.count == 3 and bulk.description == "Exclude 3 images"
    assert store.counts()["excluded"] == 3 and store.counts()["dogs"] == 1
    assert seen == [[cat0], sorted(dogs)]

    assert store.undo().description == "Exclude 3 images"  # one step for the bulk edit
    assert not store.excluded[dogs].any()
    assert store.redo_text() == "Exclude 3 images"
    store.redo()
    assert store.excluded[dogs].all()
    store.undo()
    store.set_flagged([cat0], True)  # a new edit ends the redo history
    assert not store.can_redo

    store.close()
    again = open_store(root)  # everything was committed
    assert again.effective_label(cat0) == "dog" and again.flagged[cat0]
    assert not again.excluded.any()
    assert again.undo_text() == "Flag cat.0.jpg"
    again.undo()
    again.undo()
    assert again.effective_label(cat0) == "cat" and not again.edited[cat0]
    assert not again.can_undo
    history = again.history(cat0)
    assert [(h.field, h.old, h.new) for h in history] == [
        ("label", "cat", "dog"),
        ("flagged", "0", "1"),
    ]
    assert all(h.undone for h in history)
    assert fingerprint(root) == before  # the images were only read


def test_notes_and_toggle(tmp_path: Path):
    store = open_store(make_dataset(tmp_path))
    store.set_note(0, "ears look like a fox")
    assert store.note(0) == "ears look like a fox" and store.edited[0]
    store.toggle_excluded([0, 1])
    assert store.excluded[[0, 1]].all()
    store.toggle_excluded([0, 1])
    assert not store.excluded[[0, 1]].any()
    with pytest.raises(ValueError):
        store.set_label([0], "bird")


def test_select_filters_and_sorts(tmp_path: Path):
    store = open_store(make_dataset(tmp_path))
    cat1 = store.row_for_path("train/cat.1.jpg")
    store.set_label([cat1], "dog")
    store.set_excluded([store.row_for_path("train/dog.0.jpg")], True)
    paths = lambda rows: [store.paths[r] for r in rows]  # noqa: E731
    assert paths(store.select(split="test")) == ["test/1.jpg", "test/2.jpg"]
    assert paths(store.select(label="dog", excluded=False)) == [
        "train/cat.1.jpg",
        "train/dog.1.jpg",
        "train/dog.2.jpg",
    ]
    assert paths(store.select(edited=True)) == ["train/cat.1.jpg", "train/dog.0.jpg"]
    store.record_facts(
        [(0, "s", Facts(500, 10, 10, "", None, None)), (1, "s", Facts(100, 5, 5, "", None, None))]
    )
    by_size = store.select(split="train", sort="size")
    assert by_size[:2].tolist() == [1, 0]  # known sizes first, unknown last
    assert store.select(sort="size", descending=True)[0] == 0
    assert store.paths[0] == "train/cat.0.jpg"  # train first, in natural name order
    store.set_scores("loss", [0, 2], [0.2, 0.9])
    scores = {"loss": store.scores("loss")}
    assert store.select(sort="loss", descending=True, scores=scores)[:2].tolist() == [2, 0]
    assert store.score_names() == ["loss"]


def test_exports(tmp_path: Path):
    root = make_dataset(tmp_path / "data")
    store = open_store(root)
    store.set_label([store.row_for_path("train/cat.2.jpg")], "dog")
    store.set_excluded([store.row_for_path("train/dog.0.jpg")], True)
    assert export_labels(store, tmp_path / "labels.csv") == 5
    rows = list(csv.DictReader((tmp_path / "labels.csv").open()))
    assert {r["path"]: r["label"] for r in rows}["train/cat.2.jpg"] == "dog"
    assert "train/dog.0.jpg" not in {r["path"] for r in rows}
    assert export_excluded(store, tmp_path / "excluded.txt") == 1
    assert (tmp_path / "excluded.txt").read_text() == "train/dog.0.jpg\n"

    out = tmp_path / "imagefolder"
    linked, copied = drive(export_imagefolder(store, out, CancelToken()), CancelToken())
    assert linked + copied == 7
    assert sorted(p.name for p in (out / "train" / "dog").iterdir()) == [
        "cat.2.jpg",
        "dog.1.jpg",
        "dog.2.jpg",
    ]
    original = root / "train" / "cat.2.jpg"
    exported = out / "train" / "dog" / "cat.2.jpg"
    assert exported.read_bytes() == original.read_bytes()
    if linked:
        assert os.path.samefile(exported, original)
    with pytest.raises(JobError, match="not empty"):
        drive(export_imagefolder(store, out, CancelToken()), CancelToken())


def test_imagefolder_from_zips_copies(tmp_path: Path):
    with zipfile.ZipFile(tmp_path / "train.zip", "w") as archive:
        archive.writestr("train/cat.1.jpg", b"\xff\xd8cat")
    store = open_store(tmp_path)
    assert store.path.parent == tmp_path.resolve() / ".labelscope"
    out = tmp_path / "out"
    assert drive(export_imagefolder(store, out, CancelToken()), CancelToken()) == (0, 1)
    assert (out / "train" / "cat" / "cat.1.jpg").read_bytes() == b"\xff\xd8cat"


def test_read_only_dataset_falls_back_to_the_data_dir(tmp_path: Path, monkeypatch):
    root = make_dataset(tmp_path / "data")
    monkeypatch.setenv("LABELSCOPE_DATA_DIR", str(tmp_path / "user"))
    root.chmod(0o555)
    if os.name != "posix" or os.geteuid() == 0:  # permission bits do not bind root
        from core import paths

        real = paths.is_writable
        monkeypatch.setattr(paths, "is_writable", lambda d: not d.is_relative_to(root) and real(d))
    try:
        location = store_location(root)
        assert location.is_relative_to(tmp_path / "user")
        store = open_store(root)
        store.set_label([0], "dog")
        assert store.path == location and not (root / ".labelscope").exists()
    finally:
        root.chmod(0o755)


def test_a_file_that_is_no_store_is_kept_aside_and_a_new_one_made(tmp_path: Path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    store = LabelStore(bad, tmp_path)
    assert store.recovery is not None and "not a database" in store.recovery.describe()
    [aside] = tmp_path.glob("bad.sqlite.damaged-*")
    assert aside.read_bytes() == b"this is not a database" * 100  # kept as it was
    assert store.integrity_check() == "ok"
    store.close()


_EDITOR = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from core.jobs import CancelToken, drive
    from core.pets.dataset import list_dataset
    from core.pets.labelstore import LabelStore

    listing = drive(list_dataset(Path(sys.argv[1]), CancelToken()), CancelToken())
    store = LabelStore.open(listing)
    n = len(store)
    for i in range(100000):
        row = i % n
        if i % 3 == 2:
            store.set_excluded([row], not store.excluded[row])
        else:
            store.set_label([row], "dog" if store.label[row] == 1 else "cat")
        print(i, row, int(store.label[row]), int(store.excluded[row]), flush=True)
    """
)


def test_acknowledged_edits_survive_sigkill(tmp_path: Path):
    root = make_dataset(tmp_path / "data", cats=300, dogs=300, tests=0)
    script = tmp_path / "editor.py"
    script.write_text(_EDITOR)
    process = subprocess.Popen(
        [sys.executable, str(script), str(root), str(ROOT_DIR)],
        stdout=subprocess.PIPE,
        text=True,
    )
    state: dict[int, tuple[int, int]] = {}
    assert process.stdout is not None
    for line in process.stdout:
        _i, row, label, excluded = map(int, line.split())
        state[row] = (label, excluded)
        if int(_i) >= 2000:
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # lines printed after the kill was decided may still be buffered: read them too, since
    # each was printed only after its edit was committed
    last = int(_i)
    for line in process.stdout:
        fields = line.split()
        if len(fields) < 4:  # cut by the kill
            continue
        _i, row, label, excluded = map(int, fields)
        state[row] = (label, excluded)
        last = _i

    store = open_store(root)
    assert store.integrity_check() == "ok"
    assert len(state) == 600
    # the edit after the last one printed may have been committed, unacknowledged, just
    # before the kill: its row may be one edit ahead, which loses nothing
    in_flight = (last + 1) % 600
    for row, (label, excluded) in state.items():
        if row != in_flight:
            assert (int(store.label[row]), int(store.excluded[row])) == (label, excluded), row
    assert np.sum(store.edited) > 0


def test_a_failed_write_is_rolled_back_and_the_store_goes_on(tmp_path: Path):
    store = open_store(make_dataset(tmp_path))
    with pytest.raises(ValueError):
        store.set_scores("loss", [0, 1], [0.5])  # one value short
    assert np.isnan(store.scores("loss")).all()
    assert store.set_label([0], "dog") is not None  # no transaction left open
    assert store.effective_label(0) == "dog"


_SESSION = textwrap.dedent(
    """
    import sys
    from core.jobs import CancelToken, drive
    from core.pets.dataset import list_dataset
    from core.pets.labelstore import LabelStore

    store = LabelStore.open(drive(list_dataset(sys.argv[1], CancelToken()), CancelToken()))
    print("ready", flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "label":
            step = store.set_label([store.row_for_path(rest[0])], rest[1])
            print("step" if step else "nothing", flush=True)
        elif command == "undo":
            step = store.undo()
            print(step.description if step else "nothing", flush=True)
        elif command == "show":
            print(store.effective_label(store.row_for_path(rest[0])), flush=True)
        elif command == "quit":
            break
    store.close()
    """
)


def test_two_processes_see_each_others_edits_and_undo_only_their_own(tmp_path: Path):
    root = make_dataset(tmp_path / "pets")
    a = open_store(root)
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR)}
    other = subprocess.Popen(
        [sys.executable, "-c", _SESSION, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )

    def b(command: str) -> str:
        other.stdin.write(command + "\n")
        other.stdin.flush()
        return other.stdout.readline().strip()

    try:
        assert other.stdout.readline().strip() == "ready"
        a.set_label([a.row_for_path("train/cat.0.jpg")], "dog")  # A: cat.0 → dog
        assert b("show train/cat.0.jpg") == "cat"  # B's mirror is stale until it acts...
        assert b("label train/cat.0.jpg cat") == "step"  # ...but it acts on what A did
        assert b("label train/dog.1.jpg cat") == "step"
        # A sees B's edits before its own next edit, and exports what is true now
        a.set_label([a.row_for_path("train/cat.2.jpg")], "dog")
        assert a.effective_label(a.row_for_path("train/cat.0.jpg")) == "cat"
        assert a.effective_label(a.row_for_path("train/dog.1.jpg")) == "cat"
        out = tmp_path / "labels.csv"
        export_labels(a, out)
        labels = {r["path"]: r["label"] for r in csv.DictReader(out.open())}
        assert labels["train/cat.0.jpg"] == "cat" and labels["train/dog.1.jpg"] == "cat"
        assert labels["train/cat.2.jpg"] == "dog"
        # A's undo takes back A's steps only; its first one was overridden by B: left alone
        assert a.undo().description.startswith("Label as dog")  # cat.2
        assert a.effective_label(a.row_for_path("train/cat.2.jpg")) == "cat"
        a.undo()
        assert a.effective_label(a.row_for_path("train/cat.0.jpg")) == "cat"  # B's value
        assert a.undo() is None
        assert a.effective_label(a.row_for_path("train/dog.1.jpg")) == "cat"  # B's edit stays
        # B undoes its own latest step, not A's
        assert b("undo").startswith("Label as cat")
        assert b("show train/dog.1.jpg") == "dog"
    finally:
        b("quit")
        other.wait(timeout=30)
    # once B has closed, its remaining step is history this session may undo
    a.refresh()
    assert a.undo().description.startswith("Label as cat")
    assert a.effective_label(a.row_for_path("train/cat.0.jpg")) == "dog"
