"""Backbone weights: importing a file through the same checks as Import weights file…,
refusing wrong, damaged and hostile files, the offline message, and a scan of the real
Kaggle images with a real architecture, cancelled and resumed."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from core.devices import choose
from core.jobs import Cancelled, CancelToken, JobError, drive
from core.paths import weights_cache_dir
from core.pets.backbones import BACKBONES, backbone, categories
from core.pets.features import FeatureCache
from core.pets.imagenet import (
    WeightsUnavailable,
    download_weights,
    ensure_weights,
    import_weights,
    load_model,
    weights_state,
)
from core.pets.labelstore import open_store
from core.pets.outliers import scan
from tests.conftest import shared_data
from tests.outlier_data import named_by_hash, random_weights

SMALL = BACKBONES["mobilenet_v3_small"]


def run(job):
    return drive(job, CancelToken())


def test_class_sets_come_from_torchvision_metadata():
    names = categories()
    assert len(names) == 1000
    assert names[281] == "tabby" and names[285] == "Egyptian cat"
    assert names[151] == "Chihuahua" and names[268] == "Mexican hairless"
    assert (names[286], names[287]) == ("cougar", "lynx")
    assert "Madagascar cat" in names[383] or names[383].startswith("Madagascar")
    for b in BACKBONES.values():
        assert b.file_name.startswith(b.stem + "-")
        assert b.url.startswith("https://") if not b.installed else b.url == ""


def test_import_checks_then_copies_into_the_cache(tmp_path: Path):
    source = random_weights(tmp_path / "download")
    assert weights_state(SMALL).path is None
    report = run(import_weights(source, SMALL, CancelToken()))
    assert report.path.parent == weights_cache_dir() and report.path.is_file()
    assert report.path.read_bytes() == source.read_bytes()
    assert not report.published and "Not a file torchvision publishes" in report.message
    state = weights_state(SMALL)
    assert state.path == report.path and not state.published
    assert "not the file torchvision publishes" in state.message
    assert run(ensure_weights(SMALL, CancelToken(), allow_download=False)) == report.path
    model = load_model(SMALL, report.path, choose("cpu"))
    assert model.key == report.path.stem and model.feature_dim == 1024


def refused(path: Path, *words: str) -> None:
    before = sorted(os.listdir(weights_cache_dir())) if weights_cache_dir().exists() else []
    with pytest.raises(JobError) as error:
        run(import_weights(path, SMALL, CancelToken()))
    for word in words:
        assert word in str(error.value), str(error.value)
    after = sorted(os.listdir(weights_cache_dir())) if weights_cache_dir().exists() else []
    assert after == before


def test_wrong_weight_files_are_refused(tmp_path: Path):
    good = random_weights(tmp_path / "good")
    # a name whose hash the content does not match
    wrong_hash = good.with_name("mobilenet_v3_small-deadbeef.pth")
    wrong_hash.write_bytes(good.read_bytes())
    refused(wrong_hash, "damaged or incomplete", "deadbeef")
    # no hash in the name: nothing to check against
    plain = tmp_path / "weights.pth"
    plain.write_bytes(good.read_bytes())
    refused(plain, "not named as torchvision names")
    # another architecture
    refused(random_weights(tmp_path / "resnet", "resnet18"), "does not fit MobileNetV3-Small")
    # truncated (named by the hash of what is left)
    truncated = tmp_path / "cut" / "weights.pth"
    truncated.parent.mkdir()
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    refused(named_by_hash(truncated, "mobilenet_v3_small"), "damaged or incomplete")
    # a pickle that would run code when loaded
    hostile = tmp_path / "evil" / "weights.pth"
    hostile.parent.mkdir()
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"features.0.0.weight": Evil()}, hostile)
    refused(named_by_hash(hostile, "mobilenet_v3_small"), "could run code")
    raw = tmp_path / "raw" / "weights.pth"  # a bare pickle, not torch's zip format
    raw.parent.mkdir()
    raw.write_bytes(pickle.dumps({"features.0.0.weight": Evil()}, protocol=2))
    refused(named_by_hash(raw, "mobilenet_v3_small"), "could run code")
    assert not marker.exists()


def test_offline_says_which_file_from_where_into_which_folder():
    with pytest.raises(WeightsUnavailable) as error:
        run(ensure_weights(SMALL, CancelToken(), allow_download=False))
    text = str(error.value)
    assert SMALL.file_name in text and SMALL.url in text and str(weights_cache_dir()) in text
    assert "Import weights file" in text
    # an unreachable server (a closed local port: no network is used) says the same
    with pytest.raises(WeightsUnavailable) as error:
        run(download_weights(SMALL, CancelToken(), url="http://127.0.0.1:9/none.pth"))
    assert SMALL.url in str(error.value) and "Import weights file" in str(error.value)


def test_a_damaged_download_leaves_nothing(tmp_path: Path):
    served = random_weights(tmp_path / "server")
    with pytest.raises(WeightsUnavailable, match="damaged"):
        run(download_weights(SMALL, CancelToken(), url=served.as_uri()))
    assert not weights_cache_dir().exists() or not list(weights_cache_dir().iterdir())


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(JobError, match="choose one of"):
        backbone("alexnet9000")


def test_scan_real_images_cancel_and_resume(tmp_path: Path):
    data = shared_data("dogs_vs_cats")
    report = run(import_weights(random_weights(tmp_path / "w"), SMALL, CancelToken()))
    device = choose("cpu")

    def scanned_store(name: str):
        store, _ = run(open_store(data, CancelToken(), db_path=tmp_path / f"{name}.sqlite"))
        return store, FeatureCache(tmp_path / f"{name}-features.sqlite")

    whole, whole_features = scanned_store("whole")
    model = load_model(SMALL, report.path, device)
    summary = run(scan(whole, model, CancelToken(), features=whole_features, batch_size=50))
    assert summary.scanned + summary.problems == len(whole) and summary.problems == 0

    store, features = scanned_store("parts")
    token = CancelToken()

    def stop(progress):
        if progress.done >= 500:
            token.cancel()

    with pytest.raises(Cancelled):
        drive(scan(store, model, token, features=features, batch_size=50), token, stop)
    done = int(store.scanned(model.key).sum())
    assert 500 <= done < len(store)
    resumed = run(scan(store, model, CancelToken(), features=features, batch_size=50))
    assert resumed.already == done and resumed.scanned == len(store) - done
    a, b = whole.scan_table(model.key), store.scan_table(model.key)
    np.testing.assert_array_equal(a.classes, b.classes)
    np.testing.assert_allclose(a.probs, b.probs, rtol=1e-5, atol=1e-7)
    ids_a, vec_a = whole_features.get(model.key, whole.ids)
    ids_b, vec_b = features.get(model.key, store.ids)
    np.testing.assert_array_equal(ids_a, ids_b)
    np.testing.assert_array_equal(vec_a, vec_b)
