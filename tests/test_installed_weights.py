"""The ImageNet weights installed with Labelscope (EfficientNet-Lite0/1/2 packages): found
without a download, renamed into timm's architecture and loaded strictly, refused clearly
when they do not fit, and right on real photos: the same classes as timm's own preprocessing
path, a golden top-3, and the right group in the top 5 for the real train images."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from core.devices import Device, choose
from core.jobs import CancelToken, JobError, drive
from core.pets import backbones, imagenet
from core.pets.outliers import prepare
from core.pets.sources import Source
from tests.conftest import shared_data
from tests.outlier_data import named_by_hash

LITES = [k for k, b in backbones.BACKBONES.items() if b.installed]

# Top-3 ImageNet classes of two real train photos, recorded from the installed weights with
# timm's own pretrained transforms (PIL, bicubic resize, centre crop, mean = std = 0.5).
GOLDEN = {
    "efficientnet_lite0": {"dog.1.jpg": (209, 227, 211), "cat.1.jpg": (281, 285, 282)},
    "efficientnet_lite1": {"dog.1.jpg": (209, 227, 211), "cat.1.jpg": (285, 281, 282)},
    "efficientnet_lite2": {"dog.1.jpg": (209, 227, 211), "cat.1.jpg": (281, 285, 282)},
}


def installed(key: str) -> backbones.Backbone:
    b = backbones.backbone(key)
    if backbones.installed_file(b) is None:
        pytest.skip(f"{b.distribution} is not installed")
    return b


@pytest.mark.parametrize("key", LITES)
def test_installed_weights_need_no_download_and_load_strictly(key: str):
    b = installed(key)
    state = imagenet.weights_state(b)
    assert state.installed and state.published and state.path.is_file()
    assert b.distribution in state.message and "no download" in state.message
    assert drive(imagenet.ensure_weights(b, CancelToken(), allow_download=False), CancelToken())
    raw = torch.load(state.path, map_location="cpu", weights_only=True)
    model = imagenet.build(b)
    renamed = imagenet.rename_lite_state(raw, model)
    assert set(renamed) == set(model.state_dict())  # every key placed, none left over
    for name, tensor in model.state_dict().items():
        assert renamed[name].shape == tensor.shape, name
    loaded = imagenet.load_state(b, state.path)  # strict
    torch.testing.assert_close(loaded.classifier.weight, raw["_fc.weight"])


def test_a_file_that_does_not_fit_is_refused_with_the_reason(tmp_path: Path):
    b = installed("efficientnet_lite0")
    raw = torch.load(backbones.installed_file(b), map_location="cpu", weights_only=True)
    del raw["_blocks.3._project_conv.weight"]
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "lite.pth"
    torch.save(raw, path)
    with pytest.raises(JobError, match=r"does not fit EfficientNet-Lite0: 1 weights missing"):
        imagenet.load_state(b, named_by_hash(path, "efficientnet-lite0"))
    # the weights of another size of the family do not fit either
    other = backbones.installed_file(installed("efficientnet_lite2"))
    with pytest.raises(JobError, match="does not fit EfficientNet-Lite0"):
        imagenet.load_state(b, other)


@pytest.mark.parametrize("key", LITES)
def test_real_photos_match_timm_and_the_golden_classes(key: str, monkeypatch):
    import timm
    from PIL import Image

    data = shared_data("dogs_vs_cats", "train")
    b = installed(key)
    path = imagenet.weights_state(b).path
    # compare in float32, as timm's path runs
    monkeypatch.setattr(Device, "inference_autocast", lambda self: contextlib.nullcontext())
    ours = imagenet.load_model(b, path, choose("cpu"))
    reference = imagenet.load_state(b, path).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=reference))
    source = Source(data)
    for name, golden in GOLDEN[key].items():
        pre = ours.preprocess
        _, probs = ours.run(prepare(source, name, pre.resize, pre.crop)[None])
        with torch.inference_mode():
            image = transform(Image.open(data / name).convert("RGB"))[None]
            theirs = torch.softmax(reference(image), dim=1)[0].numpy()
        assert tuple(np.argsort(-theirs)[:3]) == golden
        assert np.argmax(probs[0]) == golden[0]
        assert set(np.argsort(-probs[0])[:3]) == set(golden)


def test_top5_holds_the_right_group_for_real_train_images():
    data = shared_data("dogs_vs_cats", "train")
    b = installed(backbones.CPU_DEFAULT)
    model = imagenet.load_model(b, imagenet.weights_state(b).path, choose("cpu"))
    source = Source(data)
    names = sorted(p.name for p in data.glob("*.jpg"))
    right = 0
    for start in range(0, len(names), 100):
        part = names[start : start + 100]
        pre = model.preprocess
        images = np.stack([prepare(source, n, pre.resize, pre.crop) for n in part])
        _, probs = model.run(images)
        top5 = np.argsort(-probs, axis=1)[:, :5]
        for name, classes in zip(part, top5, strict=True):
            group = backbones.DOG_CLASSES if name.startswith("dog") else backbones.CAT_CLASSES
            right += bool(np.isin(classes, group).any())
    assert right / len(names) >= 0.95
