"""The command line: help, version, doctor's facts, a pets command, and --screenshot."""

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core import __version__, devices
from core.cli import main
from tests.conftest import ROOT


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """The launcher in a subprocess, with its own empty settings folder."""
    env = dict(os.environ, XDG_CONFIG_HOME=os.environ["LABELSCOPE_DATA_DIR"] + "-config")
    return subprocess.run(
        [sys.executable, "-m", "gui", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"Labelscope {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("doctor", "pets", "formula", "--screenshot", "--device"):
        assert command in text


def test_command_group_without_command_prints_its_help(capsys):
    assert main(["pets"]) == 2
    assert "info" in capsys.readouterr().out


def test_doctor_tells_the_truth(capsys, isolated_dirs):
    cache = isolated_dirs / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet50-11ad3fa6.pth").write_bytes(b"x" * 1024)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"torch             {torch.__version__}" in out
    assert "resnet50-11ad3fa6.pth: ResNet50_Weights.IMAGENET1K_V2" in out
    assert str(isolated_dirs / "torch" / "hub") in out
    assert f"Data directory    {isolated_dirs / 'data'} (writable, not created yet)" in out
    assert f"Device            {devices.choose().describe()}" in out


def test_doctor_verify_weights_reports_a_damaged_file(capsys, isolated_dirs):
    cache = isolated_dirs / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet50-11ad3fa6.pth").write_bytes(b"not the real file")
    assert main(["doctor", "--verify-weights"]) == 1
    assert "BAD  resnet50-11ad3fa6.pth" in capsys.readouterr().out


def test_doctor_with_an_unavailable_device(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--device", "cuda", "doctor"]) == 0
    assert "Device            error: No CUDA GPU" in capsys.readouterr().out


def test_pets_info(tmp_path: Path, capsys):
    for name in ("train/cat.1.jpg", "train/dog.1.jpg", "train/readme.txt", "test/1.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"\xff\xd8\xff")
    assert main(["pets", "info", str(tmp_path), "--show-skipped"]) == 0
    out = capsys.readouterr().out
    assert "2 labelled images (1 cats, 1 dogs), 1 test images" in out
    assert "skipped train/readme.txt: not an image file name" in out
    assert main(["pets", "info", str(tmp_path / "nothing")]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_launcher_runs_commands_headless():
    result = _run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"Labelscope {__version__}"


def test_screenshot_writes_the_main_window(tmp_path: Path):
    path = tmp_path / "window.png"
    result = _run("--screenshot", str(path), "--workbench", "formulas", "--size", "900x600")
    assert result.returncode == 0, result.stderr
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (900, 600)


def test_bad_window_size_is_a_usage_error():
    result = _run("--screenshot", "x.png", "--size", "huge")
    assert result.returncode == 2 and "WIDTHxHEIGHT" in result.stderr
