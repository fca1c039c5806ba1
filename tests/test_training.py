"""Training, checkpoints and the recogniser, on a tiny model that trains in seconds."""

import json
import os
import pickle
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from core import checkpoints
from core.devices import choose
from core.formula import ctc
from core.formula.crnn import CRNN, NUMPY_GRU_MAX_BATCH, small_batch_gru
from core.formula.model_config import CRNNConfig, column_span
from core.formula.recognizer import Recognizer
from core.formula.train_config import TrainConfig
from core.formula.training import MODEL_KIND, save_model, train
from core.jobs import Cancelled, CancelToken, JobError, drive
from tests.conftest import ROOT

TINY = CRNNConfig(channels=(4, 8, 8, 8, 8), hidden=8, layers=1, dropout=0.1)


def _config(**changes) -> TrainConfig:
    base = TrainConfig(
        steps=20,
        batch_size=8,
        lr=3e-3,
        val_size=16,
        val_every=10,
        workers=0,
        form="level1",
        model=TINY,
    )
    return replace(base, **changes)


def _train(out, config, token=None, resume=False, on_progress=None):
    token = token or CancelToken()
    return drive(train(out, config, choose("cpu"), token, resume), token, on_progress)


def test_model_shapes_and_column_mapping():
    model = CRNN(TINY)
    out = model(torch.zeros(3, 1, 32, 101))
    assert out.shape == (50, 3, 17)
    assert torch.allclose(out.exp().sum(-1), torch.ones(50, 3), atol=1e-5)
    assert model.output_lengths(torch.tensor([101, 96])).tolist() == [50, 48]
    assert column_span(0, TINY) == (-9.0, 11.0) and column_span(10, TINY) == (11.0, 31.0)
    assert 350_000 < CRNN().parameter_count() < 500_000
    with pytest.raises(ValueError):
        CRNNConfig(height=30)
    assert CRNNConfig.from_dict(CRNNConfig.preset("large").to_dict()).hidden == 256


def test_small_batches_read_the_gru_in_numpy_as_torch_reads_it():
    torch.manual_seed(0)
    model = CRNN(CRNNConfig(channels=(4, 8, 8, 8, 8), hidden=8, layers=2)).eval()
    for batch in (1, NUMPY_GRU_MAX_BATCH, NUMPY_GRU_MAX_BATCH + 1):
        images = torch.rand(batch, 1, 32, 61)
        with torch.no_grad():
            sequence = model.cnn(images).mean(dim=2).permute(2, 0, 1)
            expected = model.head(model.rnn(sequence)[0]).log_softmax(dim=-1)
            assert model._reads_gru_in_numpy(sequence) == (batch <= NUMPY_GRU_MAX_BATCH)
            assert torch.allclose(model(images), expected, atol=1e-5)
        numpy_read = small_batch_gru(model.rnn, sequence.numpy())
        assert np.allclose(numpy_read, model.rnn(sequence)[0].detach().numpy(), atol=1e-5)
    one = sequence[:, :1]
    assert not model._reads_gru_in_numpy(one)  # a gradient is wanted
    with torch.no_grad():
        assert model._reads_gru_in_numpy(one)
        assert not model.train()._reads_gru_in_numpy(one)
        lstm = CRNN(CRNNConfig(rnn="lstm")).eval()
        assert not lstm._reads_gru_in_numpy(torch.zeros(5, 1, 96))
        large = CRNN(CRNNConfig.preset("large")).eval()  # torch's GRU is faster there
        assert not large._reads_gru_in_numpy(torch.zeros(5, 1, large.rnn.input_size))


def test_an_image_reads_the_same_in_a_batch_of_wider_ones_as_alone():
    """The padding of a batch changes neither the convolutions' view of an image's right
    edge nor where the GRU's backward direction starts: the NumPy GRU (small batches) and
    torch's packed one (larger) alike, and a list longer than a width group; the former
    padded read differs."""
    torch.manual_seed(0)
    recognizer = Recognizer(CRNN(CRNNConfig(channels=(4, 8, 8, 8, 8), hidden=8)), choose("cpu"))
    rng = np.random.default_rng(0)
    for widths in ((61, 90), (40, 120, 77, 96, 33, 150)):
        inputs = [rng.random((32, w)).astype(np.float32) for w in widths]
        alone = [recognizer.forward([x])[0] for x in inputs]
        together = recognizer.forward(inputs)
        padded = recognizer.forward(inputs, alone=False)
        for one, many, old in zip(alone, together, padded, strict=True):
            assert one.shape == many.shape == old.shape
            assert np.allclose(one, many, atol=1e-4)
        assert not np.allclose(alone[0], padded[0], atol=1e-2)
    # more than a width group: read in width-sorted groups, returned in the given order
    many = [rng.random((32, int(w))).astype(np.float32) for w in rng.integers(20, 200, 150)]
    for one, read in zip(many, recognizer.forward(many), strict=True):
        assert np.allclose(recognizer.forward([one])[0], read, atol=1e-4)


def test_the_numpy_gru_runs_blas_on_one_thread_and_restores_it(monkeypatch):
    from threadpoolctl import threadpool_info

    from core.formula import crnn

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    # the controller made now knows every BLAS loaded so far (scipy's too, by other tests)
    monkeypatch.setattr(crnn, "_blas_controller", None)
    before, seen = blas_threads(), []
    numpy_gru = crnn._numpy_gru
    monkeypatch.setattr(
        crnn, "_numpy_gru", lambda *args: (seen.append(blas_threads()), numpy_gru(*args))[1]
    )
    model = CRNN(TINY).eval()
    with torch.no_grad():
        model(torch.rand(1, 1, 32, 40))
    assert seen == [{crnn.BLAS_THREADS}]
    assert blas_threads() == before
    monkeypatch.setattr(crnn, "BLAS_THREADS", None)
    with torch.no_grad():
        model(torch.rand(1, 1, 32, 40))
    assert seen[1] == before


def test_short_run_lowers_the_loss_and_writes_the_run(tmp_path):
    losses = []
    result = _train(
        tmp_path, _config(steps=40), on_progress=lambda p: losses.append(p.metrics.get("loss"))
    )
    losses = [v for v in losses if v is not None]
    assert losses[-1] < losses[0] * 0.8
    assert result["step"] == 40
    names = {"config.json", "log.csv", "last.pt", "best.pt", "final.pt"}
    assert {p.name for p in tmp_path.iterdir()} >= names
    final = checkpoints.load(tmp_path / "final.pt", "formula-crnn")
    last = checkpoints.load(tmp_path / "last.pt")
    assert final["step"] == 40 and "val_acc" in final["metrics"]
    for name, tensor in last["model"].items():  # the last step's model, a recogniser file
        assert torch.equal(tensor, final["model"][name]), name
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 40
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 1 + 4
    with pytest.raises(JobError, match="already holds a training run"):
        _train(tmp_path, _config())


def test_resume_reaches_the_same_state_as_an_uninterrupted_run(tmp_path):
    _train(tmp_path / "straight", _config())
    token = CancelToken()
    with pytest.raises(Cancelled):
        _train(
            tmp_path / "resumed",
            _config(),
            token,
            on_progress=lambda p: token.cancel() if p.done == 10 else None,
        )
    assert checkpoints.load(tmp_path / "resumed" / "last.pt")["step"] == 10
    assert not (tmp_path / "resumed" / "final.pt").exists()  # not finished
    _train(tmp_path / "resumed", _config(), resume=True)
    a = checkpoints.load(tmp_path / "straight" / "last.pt")
    b = checkpoints.load(tmp_path / "resumed" / "last.pt")
    assert a["step"] == b["step"] == 20
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])


def test_a_run_cancelled_between_validations_keeps_its_steps(tmp_path):
    """Cancel at step 7, long before the first validation: last.pt holds step 7, the run
    list offers it for Resume, and resuming reaches the uninterrupted run's state."""
    from core.formula.runs import run_info

    config = _config(val_every=15)
    _train(tmp_path / "straight", config)
    token, milestones = CancelToken(), []

    def watch(progress):
        if progress.milestone:
            milestones.append(progress.done)
        if progress.done == 7:
            token.cancel()

    with pytest.raises(Cancelled):
        _train(tmp_path / "resumed", config, token, on_progress=watch)
    assert checkpoints.load(tmp_path / "resumed" / "last.pt")["step"] == 7
    info = run_info(tmp_path / "resumed")
    assert info.step == 7 and info.can_resume and milestones == []
    _train(tmp_path / "resumed", config, resume=True, on_progress=watch)
    assert milestones == [15, 20]  # a curve point per validation, not per step
    a = checkpoints.load(tmp_path / "straight" / "last.pt")
    b = checkpoints.load(tmp_path / "resumed" / "last.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


def test_a_run_that_fails_before_saving_leaves_no_folder(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise JobError("no data")

    monkeypatch.setattr("core.formula.training.validation_set", broken)
    with pytest.raises(JobError, match="no data"):
        _train(tmp_path / "run", _config())
    assert not (tmp_path / "run").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    with pytest.raises(JobError):
        _train(tmp_path / "mine", _config())
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_stale_temporary_checkpoints_are_cleaned_up(tmp_path):
    import os
    import time

    target = tmp_path / "last.pt"
    stale = [tmp_path / f".last.pt.{n}" for n in ("abcd1234", "efgh5678")]
    fresh = tmp_path / ".last.pt.now12345"  # another save in progress
    for path in [*stale, fresh]:
        path.write_bytes(b"half a checkpoint")
    old = time.time() - 3600
    for path in stale:
        os.utime(path, (old, old))
    checkpoints.save(target, {"x": torch.zeros(1)}, "test")
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name, "last.pt"]


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = torch.nn.CTCLoss.forward
    calls = {"n": 0}

    def poisoned(self, *args):
        calls["n"] += 1
        loss = real(self, *args)
        return loss * float("nan") if calls["n"] == 7 else loss

    monkeypatch.setattr(torch.nn.CTCLoss, "forward", poisoned)
    with pytest.raises(JobError, match="loss became nan at step 7"):
        _train(tmp_path, _config(val_every=5))
    assert checkpoints.load(tmp_path / "last.pt")["step"] == 5


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def test_hostile_truncated_and_wrong_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hostile = tmp_path / "hostile.pt"
    with hostile.open("wb") as handle:
        pickle.dump({"format": checkpoints.FORMAT, "model": _Exploit()}, handle)
    torch.save(
        {"format": checkpoints.FORMAT, "kind": MODEL_KIND, "x": _Exploit()},
        tmp_path / "hostile2.pt",
    )
    with pytest.raises(checkpoints.CheckpointError, match="refused: it holds Python objects"):
        Recognizer.load(hostile)
    with pytest.raises(checkpoints.CheckpointError, match="refused: it holds Python objects"):
        Recognizer.load(tmp_path / "hostile2.pt")
    assert not (tmp_path / "pwned-by-checkpoint").exists()

    good = save_model(tmp_path / "good.pt", CRNN(TINY), _config(), 1, {})
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoints.CheckpointError, match="damaged or incomplete"):
        Recognizer.load(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(checkpoints.CheckpointError):
        Recognizer.load(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not a Labelscope checkpoint"):
        Recognizer.load(tmp_path / "plain.pt")
    checkpoints.save(tmp_path / "run.pt", {"step": 1}, "formula-training")
    with pytest.raises(checkpoints.CheckpointError, match="not a 'formula-crnn'"):
        Recognizer.load(tmp_path / "run.pt")
    with pytest.raises(checkpoints.CheckpointError, match="does not exist"):
        Recognizer.load(tmp_path / "missing.pt")
    assert Recognizer.load(good).config == TINY


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = checkpoints.save(tmp_path / "c.pt", {"step": 1}, "x")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(checkpoints.CheckpointError, match=r"disk full.*previous one is intact"):
        checkpoints.save(path, {"step": 2}, "x")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_recognition_holds_what_the_gui_needs(tmp_path):
    recognizer = Recognizer(CRNN(TINY), choose("cpu"))
    image = np.full((60, 180, 3), 250, np.uint8)
    image[10:50, 20:160] = 20  # ink over half the image: no margin to trim
    result = recognizer.recognize(image)
    assert result.log_probs.shape == (48, 17)
    assert np.allclose(np.exp(result.log_probs).sum(axis=1), 1, atol=1e-4)
    assert result.model_input.shape == (32, 96) and result.model_input.max() <= 1.0
    # an untrained model is unsure of its reading: it reads the image again at other widths
    assert result.second_look is not None
    assert set(result.timings) == {"preprocess", "forward", "decode", "second_look", "total"}
    data = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert data["second_look"]["readings"][0] == result.greedy.text
    assert data["time_steps"] == 48 and len(data["log_probs"]) == 48
    assert recognizer.x_range(10, 96, 180) == (11.0 * 180 / 96, 31.0 * 180 / 96)
    # what a viewer draws comes with the reading: the top reading's alignment and exact
    # probability, and its share of the n-best
    full = recognizer.recognize(image, beam_width=5, align=True)
    top = full.beams[0].text
    assert full.alignment is not None and full.alignment.text == top
    assert full.sequence_log_prob == pytest.approx(ctc.log_prob(full.log_probs, top))
    assert 0 < full.nbest_share <= 1
    assert result.alignment is None and result.sequence_log_prob is None  # not asked for


def test_torchrun_trains_with_two_cpu_processes(tmp_path):
    """DistributedDataParallel on the gloo backend, launched as a user would."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "core.cli",
        "--device",
        "cpu",
        "formula",
        "train",
        "--out",
        str(tmp_path / "run"),
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--val-size",
        "8",
        "--val-every",
        "2",
        "--workers",
        "0",
    ]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = checkpoints.load(tmp_path / "run" / "last.pt")
    assert record["step"] == 4


def test_a_mixed_in_folder_trains_with_a_spawned_data_worker(tmp_path):
    """The folder's images reach a spawned worker (nothing in the dataset is a lambda)."""
    from core.formula.generate import GenerateConfig, generate

    data = tmp_path / "set"
    drive(generate(data, GenerateConfig(count=12, seed=3), CancelToken()), CancelToken())
    config = _config(steps=4, val_every=2, val_size=8, batch_size=4, workers=1,
                     data=(str(data),), data_share=0.5)  # fmt: skip
    result = _train(tmp_path / "run", config)
    assert result["step"] == 4 and (tmp_path / "run" / "last.pt").exists()


def test_the_data_share_sets_how_many_images_come_from_the_folders(tmp_path, capsys):
    import itertools

    from core.cli import main
    from core.formula.train_data import MixedStream

    for share in (0.3, 0.75):
        stream = MixedStream(itertools.repeat("drawn"), ["from a folder"], share, seed=5)
        drawn = list(itertools.islice(iter(stream), 4000))
        assert abs(drawn.count("from a folder") / 4000 - share) < 0.03
    with pytest.raises(ValueError, match="between 0 and 1"):
        _config(data_share=1.5)
    assert main(["formula", "train", "--out", str(tmp_path / "run"), "--data-share", "-0.1"]) != 0
    assert "between 0 and 1" in capsys.readouterr().err


def test_recognize_eval_and_export_commands(tmp_path, capsys):
    """The formula commands on a tiny model: recognize, eval (with a gallery), ONNX."""
    import random

    import cv2

    from core.cli import main
    from core.formula import synth

    model = save_model(tmp_path / "tiny.pt", CRNN(TINY), _config(), 0, {})
    main(["formula", "generate", "--out", str(tmp_path / "set"), "--count", "6"])
    capsys.readouterr()
    assert (
        main(
            [
                "formula",
                "recognize",
                "--model",
                str(model),
                str(tmp_path / "set" / "0.png"),
                str(tmp_path / "set" / "1.png"),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [
        str(tmp_path / "set" / "0.png"),
        str(tmp_path / "set" / "1.png"),
    ]
    assert (
        main(
            [
                "formula",
                "recognize",
                "--json",
                "--model",
                str(model),
                str(tmp_path / "set" / "0.png"),
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["time_steps"] == len(data["log_probs"]) and "timings_ms" in data
    (tmp_path / "bad.png").write_text("no")
    assert main(["formula", "recognize", "--model", str(model), str(tmp_path / "bad.png")]) == 1

    gallery = tmp_path / "errors.png"
    assert (
        main(
            [
                "formula",
                "eval",
                "--model",
                str(model),
                "--data",
                str(tmp_path / "set"),
                "--gallery",
                str(gallery),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "sequence accuracy" in out and "character error rate" in out
    assert "greedy decoding" in out
    assert cv2.imread(str(gallery)) is not None
    arguments = ["formula", "eval", "--grammar", "--model", str(model)]
    arguments += ["--data", str(tmp_path / "set"), "--gallery", str(gallery)]
    assert main(arguments) == 0
    assert "grammar-constrained beam search" in capsys.readouterr().out

    image = synth.render("1+2", random.Random(0), "captcha")
    assert (
        main(
            [
                "formula",
                "recognize",
                "--model",
                str(tmp_path / "missing.pt"),
                str(tmp_path / "set" / "0.png"),
            ]
        )
        == 1
    )
    assert "does not exist" in capsys.readouterr().err
    assert image.shape == (60, 180, 3)


def test_onnx_export_matches_torch(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from core.formula.export import export_onnx

    torch.manual_seed(0)
    recognizer = Recognizer(CRNN(TINY).eval(), choose("cpu"))
    path = export_onnx(recognizer, tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for width in (96, 150):  # the width axis is dynamic
        x = torch.rand(1, 1, 32, width)
        with torch.no_grad():
            expected = recognizer.model(x).numpy()
        (got,) = session.run(None, {"images": x.numpy()})
        assert got.shape == expected.shape == (width // 2, 1, 17)
        assert np.abs(got - expected).max() < 1e-4


def test_fine_tuning_starts_from_a_model(tmp_path):
    start = save_model(tmp_path / "start.pt", CRNN(TINY), _config(), 0, {})
    _train(
        tmp_path / "tuned",
        _config(steps=4, lr=1e-12, init=str(start), style_weights=(("captcha", 1.0),)),
    )
    before = checkpoints.load(start)["model"]
    after = checkpoints.load(tmp_path / "tuned" / "last.pt")["model"]
    for name, tensor in before.items():
        if tensor.is_floating_point() and "running" not in name:
            assert torch.allclose(tensor, after[name], atol=1e-6), name
    other = save_model(tmp_path / "other.pt", CRNN(CRNNConfig()), _config(), 0, {})
    with pytest.raises(JobError, match="another configuration"):
        _train(tmp_path / "wrong", _config(init=str(other)))


def test_checkpoints_get_the_usual_file_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        path = checkpoints.save(tmp_path / "c.pt", {"step": 1}, "x")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_data_workers_default_to_one_on_a_cpu_and_most_cores_on_a_gpu(monkeypatch):
    from core.devices import Device
    from core.formula.train_config import default_workers

    gpu = Device("cuda", 0, "a GPU")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    assert default_workers(choose("cpu")) == 1
    assert default_workers(gpu) == 14
    assert default_workers(gpu, world=4) == 3  # four torchrun processes share the cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)), raising=False)
    assert default_workers(gpu) == 16  # the loader's cap
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert default_workers(gpu) == 1
