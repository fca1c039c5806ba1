"""`labelscope pets info` and `labelscope pets export` on folders the tests make."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from core.cli import main
from core.jobs import CancelToken, drive
from core.pets.labelstore import open_store
from tests.pets_data import make_pets


def test_info_json_and_check(tmp_path: Path, capsys):
    root = make_pets(tmp_path / "pets", cats=3, dogs=2, tests=2, bad=True)
    (root / "train" / "notes.txt").write_text("hello")
    assert main(["pets", "info", str(root), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["train"] == {"cat": 3 + 5, "dog": 2 + 3} and facts["test"] == 2
    assert facts["skipped"] == [{"path": "train/notes.txt", "reason": "not an image file name"}]
    assert "problems" not in facts

    assert main(["pets", "info", str(root), "--json", "--check"]) == 1
    captured = capsys.readouterr()
    problems = {p["path"]: p["kind"] for p in json.loads(captured.out)["problems"]}
    assert problems == {
        "train/cat.900.jpg": "truncated",
        "train/cat.901.jpg": "empty",
        "train/cat.902.jpg": "not-an-image",
        "train/dog.903.jpg": "too-large",
    }
    assert "Checked 15 of 15 images" in captured.err  # the progress bar goes to stderr

    assert main(["pets", "info", str(root), "--check"]) == 1
    out = capsys.readouterr().out
    assert "4 images cannot be used:" in out
    assert "train/cat.901.jpg: empty: the file is empty (0 bytes)" in out


def test_export_uses_the_edits(tmp_path: Path, capsys):
    root = make_pets(tmp_path / "pets", cats=2, dogs=2, tests=1)
    store, _ = drive(open_store(root, CancelToken()), CancelToken())
    store.set_label([store.row_for_path("train/cat.1.jpg")], "dog")
    store.set_excluded([store.row_for_path("train/dog.0.jpg")], True)
    store.close()

    assert main(["pets", "export", str(root), "--labels", str(tmp_path / "l.csv")]) == 0
    rows = {r["path"]: r["label"] for r in csv.DictReader((tmp_path / "l.csv").open())}
    assert rows == {"train/cat.0.jpg": "cat", "train/cat.1.jpg": "dog", "train/dog.1.jpg": "dog"}
    assert main(["pets", "export", str(root), "--excluded", str(tmp_path / "x.txt")]) == 0
    assert (tmp_path / "x.txt").read_text() == "train/dog.0.jpg\n"
    out = tmp_path / "folder"
    assert main(["pets", "export", str(root), "--imagefolder", str(out)]) == 0
    assert sorted(p.name for p in (out / "train" / "dog").iterdir()) == ["cat.1.jpg", "dog.1.jpg"]
    assert [p.name for p in (out / "test").iterdir()] == ["1.jpg"]
    assert "hard links" in capsys.readouterr().out
    assert main(["pets", "export", str(root), "--imagefolder", str(out)]) == 1  # not empty
    assert "not empty" in capsys.readouterr().err


def test_scan_with_an_imported_weights_file_then_flags_csv(tmp_path: Path, capsys):
    from core.paths import weights_cache_dir
    from tests.outlier_data import random_weights

    root = make_pets(tmp_path / "pets", cats=4, dogs=4, tests=3)
    assert main(["pets", "scan", str(root), "--offline", "--backbone", "mobilenet_v3_small"]) == 1
    err = capsys.readouterr().err
    assert "mobilenet_v3_small-047dcff4.pth" in err and "Import weights file" in err

    assert main(["pets", "scan", str(root), "--weights", str(tmp_path / "none-12345678.pth")]) == 1
    assert "none-12345678.pth does not exist" in capsys.readouterr().err
    other = random_weights(tmp_path / "other", arch="resnet18")
    assert main(["pets", "scan", str(root), "--weights", str(other)]) == 1
    err = capsys.readouterr().err
    assert "does not fit EfficientNet-Lite0" in err and "mobilenet_v3_small" in err

    weights = random_weights(tmp_path / "w")
    args = ["pets", "scan", str(root), "--weights", str(weights)]  # the name says the model
    assert main([*args, "--top-n", "3", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "Scanned 11 images" in out and "Not a file torchvision publishes" in out
    assert "of 11 scanned" in out
    assert "too few labelled images to judge" in out  # 8 labelled: no label is flagged
    assert (weights_cache_dir() / weights.name).is_file()
    # a second run has nothing left to do: the results are in the store
    assert main(["pets", "scan", str(root), "--offline", "--backbone", "mobilenet_v3_small"]) == 0
    assert "Scanned 0 images" in capsys.readouterr().out

    target = tmp_path / "flags.csv"
    assert main(["pets", "flags", str(root), "--csv", str(target), "--top-n", "3"]) == 0
    rows = list(csv.DictReader(target.open()))
    assert len(rows) == 11 and {r["split"] for r in rows} == {"train", "test"}
    assert all(len(r["top_3"].split("; ")) == 3 for r in rows)
    assert {r["outlier"] for r in rows} <= {"0", "1"}
    assert all(r["likely_mislabelled"] == "" for r in rows if r["split"] == "train")
    # `-` is standard output, which then holds nothing but the CSV
    capsys.readouterr()
    assert main(["pets", "flags", str(root), "--csv", "-", "--top-n", "3"]) == 0
    captured = capsys.readouterr()
    assert list(csv.DictReader(captured.out.splitlines())) == rows
    assert "Wrote 11 images to -" in captured.err and not (Path.cwd() / "-").exists()
    assert main(["pets", "flags", str(root), "--csv", str(target), "--top-n", "11"]) == 1
    assert "--top-n must be between 1 and 10" in capsys.readouterr().err


def test_flags_before_any_scan_is_a_clear_error(tmp_path: Path, capsys):
    root = make_pets(tmp_path / "pets", cats=1, dogs=1, tests=0)
    assert main(["pets", "flags", str(root), "--csv", str(tmp_path / "f.csv")]) == 1
    assert "has not been scanned yet" in capsys.readouterr().err
