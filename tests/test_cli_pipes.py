"""The command line as a pipe citizen: a closed pipe ends quietly, `-` is standard output,
and under torchrun only rank 0 speaks."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import cv2

from core.cli import EXIT_PIPE, main
from core.formula import synth
from tests.pets_data import make_pets

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}


def _formulas(folder: Path, count: int) -> list[str]:
    folder.mkdir()
    paths = []
    for i in range(count):
        image = synth.render("7+3*0", random.Random(i), "captcha")
        path = folder / f"{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths


def test_a_closed_pipe_ends_quietly(tmp_path: Path):
    """`labelscope formula recognize *.png | head -1`: the reader has gone before the first
    line is written; no traceback, the status a shell gives a command stopped by SIGPIPE."""
    paths = _formulas(tmp_path / "set", 3)
    command = [sys.executable, "-m", "core.cli", "formula", "recognize", *paths]
    process = subprocess.Popen(
        command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    process.stdout.close()  # as `head` does once it has its line
    err = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=120) == EXIT_PIPE
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_head_reads_the_first_line(tmp_path: Path):
    paths = _formulas(tmp_path / "set", 3)
    shell = f"{sys.executable} -m core.cli formula recognize {' '.join(paths)} | head -1"
    done = subprocess.run(
        ["bash", "-c", shell + "; echo status ${PIPESTATUS[0]} >&2"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.stdout.splitlines() == [f"{paths[0]}\t7+3*0"]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] in ("status 0", f"status {EXIT_PIPE}")


def test_labels_and_excluded_go_to_standard_output(tmp_path: Path, capsys, monkeypatch):
    root = make_pets(tmp_path / "pets", cats=3, dogs=2, tests=1)
    monkeypatch.chdir(tmp_path)
    assert main(["pets", "export", str(root), "--labels", "-"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(captured.out.splitlines()))
    assert len(rows) == 5 and {r["label"] for r in rows} == {"cat", "dog"}
    assert "Wrote 5 labels to -" in captured.err
    assert main(["pets", "export", str(root), "--excluded", "-"]) == 0
    assert capsys.readouterr().out == ""
    assert not (tmp_path / "-").exists()


def test_torchrun_ranks_other_than_0_are_silent(tmp_path: Path):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "-m", "core.cli", "--device", "cpu", "formula", "train", "--out", str(out),
        "--steps", "4", "--val-size", "8", "--val-every", "4", "--batch-size", "4",
        "--workers", "1",
    ]  # fmt: skip
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("best validation sequence accuracy") == 1
    assert "-1.0000" not in done.stdout
    assert done.stderr.count("Training on") == 1
    assert done.stderr.count("Drawing the validation set") == 1
    assert (out / "best.pt").is_file() and (out / "final.pt").is_file()
