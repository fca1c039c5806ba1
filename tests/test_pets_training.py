"""Pets training: the competition's metric by hand, runs of every mode on the store's
effective labels, checkpoints that resume, and a submission that is read back and checked."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.devices import choose
from core.jobs import Cancelled, CancelToken, JobError, drive
from core.pets import cnn, cnn_training, train_data
from core.pets.labelstore import open_store
from core.pets.metrics import (
    apply_temperature,
    evaluate,
    fit_temperature,
    leaderboard,
    log_loss,
    placement,
)
from core.pets.outliers import scan
from core.pets.runs import TrainRequest, find_run, list_runs, split
from core.pets.sources import Source
from core.pets.submission import check_submission, write_submission
from core.pets.training import train_run
from tests.conftest import shared_data
from tests.outlier_data import logits_for, make_coded_dataset, stand_in
from tests.pets_data import make_pets


def run(job):
    return drive(job, CancelToken())


def opened(root: Path, db: Path | None = None):
    store, _ = run(open_store(root, CancelToken(), db_path=db))
    return store


def test_log_loss_by_hand_and_at_the_clip_edges():
    assert log_loss([1, 0], [0.9, 0.2]) == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)
    # certain and right: clipped to 0.995
    assert log_loss([1, 0], [1.0, 0.0]) == pytest.approx(-math.log(0.995))
    # certain and wrong: the clip caps the cost at −ln 0.005 ≈ 5.30; unclipped it is ≈ 34.5
    assert log_loss([1, 0], [0.0, 1.0]) == pytest.approx(-math.log(0.005))
    assert log_loss([1, 0], [0.0, 1.0], clip=None) == pytest.approx(-math.log(1e-15), rel=1e-4)
    # exactly on the edges, nothing changes
    assert log_loss([1], [0.005]) == pytest.approx(-math.log(0.005))
    assert log_loss([0], [0.995]) == pytest.approx(-math.log(0.005))
    assert log_loss([1], [0.5]) == pytest.approx(math.log(2))
    e = evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.4]))
    assert e.confusion == ((1, 1), (1, 1)) and e.accuracy == 0.5 and e.auc == 0.75


def test_temperature_and_leaderboard():
    rng = np.random.default_rng(0)
    honest = rng.uniform(0.02, 0.98, 5000)  # calibrated: a dog with exactly this probability
    y = (rng.random(5000) < honest).astype(int)
    overconfident = apply_temperature(honest, 0.3)  # logits × 3.3
    t = fit_temperature(y, overconfident)
    assert 2.8 < t < 3.9  # undoes the sharpening (1 / 0.3 = 3.33)
    assert log_loss(y, apply_temperature(overconfident, t)) < log_loss(y, overconfident)
    scores = leaderboard()
    assert len(scores) == 1315 and scores[0] == pytest.approx(0.03302)
    assert placement(0.03).rank == 1 and placement(0.03302).rank == 1
    assert placement(0.05).rank == int(np.sum(scores < 0.05)) + 1
    assert placement(99).rank == 1316


def test_an_edit_changes_the_next_runs_training_set(tmp_path: Path):
    store = opened(make_pets(tmp_path / "pets", cats=10, dogs=10, tests=3))
    first = run(train_run(store, TrainRequest("classic", classic_model="knn"), CancelToken()))
    assert first.counts == {"train": 16, "val": 4, "test": 3, "left_out_flagged": 0}
    store.set_excluded([0, 1], True)
    store.set_label([2], "dog")
    train_rows, val_rows = split(store, 0.2, 0)
    used = set(train_rows.tolist()) | set(val_rows.tolist())
    assert 0 not in used and 1 not in used and 2 in used
    second = run(train_run(store, TrainRequest("classic", classic_model="knn"), CancelToken()))
    assert second.counts["train"] + second.counts["val"] == 18
    assert [r.id for r in list_runs(store)] == [second.id, first.id]
    assert find_run(store, "latest").id == second.id


def test_features_mode_uses_the_scan_embeddings(tmp_path: Path):
    layout = {f"train/cat.{i}.jpg": 20 for i in range(8)}
    layout |= {f"train/dog.{i}.jpg": 180 for i in range(8)}
    layout |= {f"test/{i}.jpg": (20, 180)[i % 2] for i in range(1, 5)}
    store = opened(make_coded_dataset(tmp_path / "pets", layout))
    with pytest.raises(JobError, match="scan the dataset first"):
        run(train_run(store, TrainRequest("features"), CancelToken()))
    table = {20: logits_for({281: 9.0}), 180: logits_for({207: 9.0})}
    from core.pets.features import FeatureCache, features_location

    cache = FeatureCache(features_location(store.root))
    run(scan(store, stand_in(table), CancelToken(), features=cache))
    cache.close()
    result = run(train_run(store, TrainRequest("features"), CancelToken()))
    assert result.request["models"] == ["stand-in"]
    assert result.evaluation["accuracy"] == 1.0
    bagged = run(train_run(store, TrainRequest("features", folds=4), CancelToken()))
    assert bagged.evaluation["accuracy"] == 1.0 and bagged.title == "features (stand-in, 4-fold)"
    target = tmp_path / "sub.csv"
    assert write_submission(store, result, target) == 4
    rows = {int(r["id"]): float(r["label"]) for r in csv.DictReader(target.open())}
    assert rows[1] > 0.5 > rows[2]  # 1.jpg is dog-coloured, 2.jpg cat-coloured


def test_features_mode_concatenates_the_installed_models_scans(tmp_path: Path):
    from core.pets.features import FeatureCache, features_location
    from core.pets.training import default_feature_models

    layout = {f"train/cat.{i}.jpg": 20 for i in range(8)}
    layout |= {f"train/dog.{i}.jpg": 180 for i in range(8)}
    layout |= {"test/1.jpg": 20}
    store = opened(make_coded_dataset(tmp_path / "pets", layout))
    table = {20: logits_for({281: 9.0}), 180: logits_for({207: 9.0})}
    cache = FeatureCache(features_location(store.root))
    # two installed models over everything, a torchvision one, and an installed one that
    # saw the train images only
    run(scan(store, stand_in(table, "lite0"), CancelToken(), features=cache,
             backbone="efficientnet_lite0"))  # fmt: skip
    run(scan(store, stand_in(table, "lite2"), CancelToken(), features=cache,
             backbone="efficientnet_lite2"))  # fmt: skip
    run(scan(store, stand_in(table, "lite1"), CancelToken(), features=cache, splits=("train",),
             backbone="efficientnet_lite1"))  # fmt: skip
    run(scan(store, stand_in(table, "small"), CancelToken(), features=cache,
             backbone="mobilenet_v3_small"))  # fmt: skip
    cache.close()
    everything = np.arange(len(store))
    # the latest scan, with the installed models' that cover the rows
    assert default_feature_models(store, everything) == ("lite0", "lite2", "small")
    train_only = np.flatnonzero(store.split == 0)
    assert default_feature_models(store, train_only) == ("lite0", "lite1", "lite2", "small")
    result = run(train_run(store, TrainRequest("features"), CancelToken()))
    assert result.request["models"] == ["lite0", "lite2", "small"]
    assert result.evaluation["accuracy"] == 1.0


def test_a_cancelled_cnn_resumes_from_its_checkpoint(tmp_path: Path):
    root = make_pets(tmp_path / "pets", cats=6, dogs=6, tests=0)
    store = opened(root)
    source = Source(root)
    rows = store.effective_rows()
    labels = (store.label[rows] == 2).astype(np.int64)
    paths = [store.paths[r] for r in rows]
    config = cnn.CNNConfig("scratch", image_size=32, epochs=2, batch_size=4, lr=1e-3)
    device = choose("cpu")

    def data(train: bool) -> train_data.PetImages:
        return train_data.PetImages(source, paths, labels, 32, train)

    whole = run(
        cnn_training.train(
            config, data(True), data(False), device, CancelToken(), tmp_path / "a.pt"
        )
    )
    token = CancelToken()

    def stop(progress):
        if progress.metrics.get("epoch") == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        drive(
            cnn_training.train(config, data(True), data(False), device, token, tmp_path / "b.pt"),
            token,
            stop,
        )
    resumed = run(
        cnn_training.train(
            config, data(True), data(False), device, CancelToken(), tmp_path / "b.pt"
        )
    )
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=1e-4, atol=1e-5)
    _model, loaded_config = cnn.load_trained(tmp_path / "b.pt", device)
    assert loaded_config == config


@pytest.mark.parametrize(
    "request_",
    [
        TrainRequest("scratch", epochs=1, image_size=48, batch_size=32),
        TrainRequest(
            "finetune", backbone="mobilenet_v3_small", weights="random", epochs=1,
            image_size=64, batch_size=32, freeze_epochs=0,
        ),
    ],
    ids=["scratch", "random-backbone"],
)  # fmt: skip
def test_end_to_end_on_the_real_images(tmp_path: Path, request_: TrainRequest):
    data = shared_data("dogs_vs_cats")
    store = opened(data, tmp_path / "store.sqlite")
    result = run(train_run(store, request_, CancelToken()))
    assert result.counts == {"train": 800, "val": 200, "test": 150, "left_out_flagged": 0}
    assert 0 < result.evaluation["log_loss_clipped"] <= -math.log(0.005)
    assert "on the final public leaderboard" in result.placement
    target = tmp_path / "submission.csv"
    assert write_submission(store, result, target) == 150
    check_submission(target, list(range(1, 151)))
    rows = list(csv.DictReader(target.open()))
    assert [int(r["id"]) for r in rows] == list(range(1, 151))
    assert all(0.005 <= float(r["label"]) <= 0.995 for r in rows)


def test_a_wrong_submission_is_caught(tmp_path: Path):
    path = tmp_path / "s.csv"
    path.write_text("id,label\n1,0.5\n2,0.7\n")
    check_submission(path, [1, 2])
    with pytest.raises(JobError, match="rows for 3 test images"):
        check_submission(path, [1, 2, 3])
    path.write_text("id,label\n1,1.0\n")
    with pytest.raises(JobError, match="outside"):
        check_submission(path, [1])


def test_did_cleaning_help_uses_the_same_split(tmp_path: Path):
    from core.pets.training import compare_cleaning, flagged_rows

    store = opened(make_pets(tmp_path / "pets", cats=12, dogs=12, tests=2))
    request = TrainRequest("classic", classic_model="knn")
    with pytest.raises(JobError, match="Nothing is flagged yet"):
        run(compare_cleaning(store, request, CancelToken()))
    train_rows, val_rows = split(store, 0.2, 0)
    store.set_flagged([int(train_rows[0]), int(train_rows[1]), int(val_rows[0])], True)
    assert set(flagged_rows(store).tolist()) == {
        int(train_rows[0]), int(train_rows[1]), int(val_rows[0])
    }  # fmt: skip
    comparison = run(compare_cleaning(store, request, CancelToken()))
    a, b = comparison.with_flagged, comparison.without_flagged
    assert a.counts["train"] == len(train_rows) and a.counts["left_out_flagged"] == 0
    assert b.counts["train"] == len(train_rows) - 2 and b.counts["left_out_flagged"] == 2
    assert a.counts["val"] == b.counts["val"] == len(val_rows)  # validation untouched
    from core.pets.runs import run_predictions

    ids_a = run_predictions(store, a)["val_ids"]
    ids_b = run_predictions(store, b)["val_ids"]
    np.testing.assert_array_equal(ids_a, ids_b)
    assert "Cleaning" in comparison.describe() and "left out of training" in comparison.describe()


def test_a_cancelled_run_resumes_on_its_own_split(tmp_path: Path):
    from core.pets.runs import unfinished_runs

    store = opened(make_pets(tmp_path / "pets", cats=8, dogs=8, tests=2))
    request = TrainRequest("scratch", epochs=3, image_size=32, batch_size=8)
    token = CancelToken()

    def stop(progress):
        if progress.metrics.get("epoch") == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        drive(train_run(store, request, token), token, stop)
    (waiting,) = unfinished_runs(store)
    assert list_runs(store) == []
    # another run in between does not disturb it
    run(train_run(store, TrainRequest("classic", classic_model="knn"), CancelToken()))
    result = run(train_run(store, request, CancelToken(), resume=waiting))
    assert result.id == waiting and unfinished_runs(store) == []
    assert result.counts["train"] + result.counts["val"] == 16
    with pytest.raises(JobError, match="finished already"):
        run(train_run(store, request, CancelToken(), resume=waiting))

    # excluding an image it trained on makes a resume impossible, and says why
    token = CancelToken()
    with pytest.raises(Cancelled):
        drive(train_run(store, request, token), token, stop)
    (waiting,) = unfinished_runs(store)
    store.set_excluded([int(store.effective_rows()[0])], True)
    with pytest.raises(JobError, match="excluded or removed since"):
        run(train_run(store, request, CancelToken(), resume=waiting))


def test_gradual_unfreezing_opens_one_stage_per_epoch():
    config = cnn.CNNConfig(
        "finetune", backbone="resnet50", weights="random", freeze_epochs=1, gradual=True
    )
    model = cnn.build_model(config)
    parts = cnn.stages(model[0])
    assert len(parts) == 6  # conv1, bn1, layer1–4 (pooling and the replaced fc hold nothing)
    head = {id(p) for p in model[1].parameters()}
    counts = []
    for epoch in range(8):
        trainable = cnn.trainable_parameters(model, config, epoch)
        counts.append(len(list(model.parameters())) if trainable is None else len(trainable))
        if trainable is not None:
            assert head <= trainable
    assert counts[0] == len(head)  # the head alone first
    assert counts == sorted(counts) and len(set(counts[:7])) == 7  # one more stage each epoch
    assert cnn.trainable_parameters(model, config, 7) is None  # then everything
    assert [len(cnn.stages(cnn.build_model(replace_backbone(config, b))[0])) > 3
            for b in ("mobilenet_v3_small", "efficientnet_b0", "efficientnet_lite0")
            ] == [True, True, True]  # fmt: skip


@pytest.mark.parametrize("images", [4, 8, 12, 16, 20, 24])
def test_a_few_batches_train_without_a_schedule_error(tmp_path: Path, images: int):
    """One epoch of 1 to 6 batches: the one-cycle schedule must still have a warm-up."""
    root = make_pets(tmp_path / "pets", cats=images // 2, dogs=images // 2, tests=0)
    store = opened(root)
    rows = store.effective_rows()
    labels = (store.label[rows] == 2).astype(np.int64)
    data = train_data.PetImages(Source(root), [store.paths[r] for r in rows], labels, 32, True)
    config = cnn.CNNConfig("scratch", image_size=32, epochs=1, batch_size=4)
    run(cnn_training.train(config, data, data, choose("cpu"), CancelToken(), tmp_path / "c.pt"))
    assert (tmp_path / "c.pt").exists()


def replace_backbone(config, backbone: str):
    from dataclasses import replace

    return replace(config, backbone=backbone)


@pytest.mark.parametrize("mode", ["classic", "scratch"])
def test_training_leaves_out_files_it_cannot_decode(tmp_path: Path, mode: str, capsys):
    from core.cli import main

    root = make_pets(tmp_path / "pets", cats=6, dogs=6, tests=2, bad=True)
    args = ["pets", "train", str(root), "--mode", mode, "--epochs", "1", "--image-size", "32"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "Left out 4 unreadable image(s): train/cat.900.jpg" in captured.out
    assert "Traceback" not in captured.err
    store = opened(root)
    result = list_runs(store)[0]
    assert result.counts["train"] + result.counts["val"] == 12 + 4  # the decodable bad files

    # a damaged or pickled predictions file is refused with a plain message
    predictions = tmp_path / "pets" / ".labelscope" / "labelscope-runs" / result.id
    np.savez(predictions / "predictions.npz", val_ids=np.array([{"a": 1}], dtype=object))
    target = tmp_path / "sub.csv"
    assert main(["pets", "predict", str(root), "--run", "latest", "--submission", str(target)]) == 1
    err = capsys.readouterr().err
    assert "holds Python objects" in err and "Traceback" not in err
    (predictions / "predictions.npz").write_bytes(b"PK\x03\x04 cut short")
    assert main(["pets", "predict", str(root), "--run", "latest", "--submission", str(target)]) == 1
    assert "is damaged" in capsys.readouterr().err and not target.exists()


def test_cleaning_that_leaves_nothing_says_why(tmp_path: Path):
    from core.pets.outliers import implausible_flags
    from core.pets.training import compare_cleaning

    layout = {f"train/cat.{i}.jpg": 20 for i in range(12)}
    layout |= {f"train/dog.{i}.jpg": 180 for i in range(12)}
    store = opened(make_coded_dataset(tmp_path / "pets", layout))
    sign = logits_for({919: 9.0})  # a street sign for every image: all outliers
    run(scan(store, stand_in({20: sign, 180: sign}), CancelToken()))
    assert "flags mark 24 of 24 images (100%)" in implausible_flags(store, "stand-in")
    with pytest.raises(JobError, match="would leave 0 cats and 0 dogs to train on"):
        run(compare_cleaning(store, TrainRequest("classic"), CancelToken()))
    with pytest.raises(JobError, match="too few to compare"):
        run(train_run(store, TrainRequest("classic", without_flagged=True), CancelToken()))

    good = {20: logits_for({281: 9.0}), 180: logits_for({207: 9.0})}
    run(scan(store, stand_in(good, "good"), CancelToken()))
    assert implausible_flags(store, "good") == ""


def test_fine_tuning_imported_weights_says_so(tmp_path: Path):
    from core.pets.backbones import backbone
    from core.pets.imagenet import import_weights
    from tests.outlier_data import random_weights

    small = backbone("mobilenet_v3_small")
    run(import_weights(random_weights(tmp_path / "w"), small, CancelToken()))
    store = opened(make_pets(tmp_path / "pets", cats=4, dogs=4, tests=0))
    request = TrainRequest(
        "finetune", backbone=small.key, epochs=1, image_size=32, batch_size=4, predict_test=False
    )
    result = run(train_run(store, request, CancelToken()))
    assert result.title == "finetune (mobilenet_v3_small, imported weights)"
    assert "not the published ones" in result.describe()
