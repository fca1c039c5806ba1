"""The Pets CNNs: a small network trained from scratch, or an ImageNet backbone with a new
one-logit head; which of its parameters train in which epoch (the head first, then one stage
per epoch from the top down); and a trained checkpoint loaded back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core import checkpoints
from core.devices import Device
from core.pets import backbones, imagenet

CHECKPOINT_KIND = "pets-cnn"


MEAN = (0.485, 0.456, 0.406)  # from scratch, and torchvision's backbones


STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CNNConfig:
    mode: str  # "scratch" or "finetune"
    backbone: str = ""  # finetune: a key of backbones.BACKBONES
    weights: str = "imagenet"  # finetune: "imagenet" (the cache) or "random"
    image_size: int = 128
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    freeze_epochs: int = 0  # finetune: train only the new head for this many epochs first
    gradual: bool = False  # finetune: then unfreeze one stage per epoch, from the top down
    augment: bool = True
    seed: int = 0
    workers: int = 0


def scratch_cnn() -> nn.Module:
    """Four conv blocks (32–256 channels), global average pooling, one logit (≈ 0.4 M
    parameters)."""

    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(
        block(3, 32),
        block(32, 64),
        block(64, 128),
        nn.Conv2d(128, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(256, 1),
    )


def normalisation(config: CNNConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the network's input is normalised with: the backbone's own."""
    if config.mode == "finetune":
        pre = backbones.backbone(config.backbone).preprocess()
        return pre.mean, pre.std
    return MEAN, STD


def build_model(config: CNNConfig) -> nn.Module:
    """The network of a config, with ImageNet weights for fine-tuning: installed ones, or
    torchvision's from the cache (the scan downloads them)."""
    if config.mode == "scratch":
        return scratch_cnn()
    b = backbones.backbone(config.backbone)
    if config.weights == "random":
        model = imagenet.build(b)
    else:
        state = imagenet.weights_state(b)
        if state.path is None:
            if b.installed:
                raise imagenet.WeightsUnavailable(state.message)
            raise imagenet.WeightsUnavailable(
                f"Fine-tuning {b.title} needs its ImageNet weights, which are not in the cache "
                f"{state.directory}. Run a scan with it once (it downloads them), or import "
                f"{b.file_name} (`labelscope pets scan --backbone {b.key} --weights FILE`, "
                "or Import weights file… on the Scan tab)."
            )
        model = imagenet.load_state(b, state.path)
    head = imagenet.take_head(model)  # the 1,000-way layer gives way to a single logit
    return nn.Sequential(model, nn.Linear(head.in_features, 1))


def head_parameters(model: nn.Module, config: CNNConfig) -> list[nn.Parameter]:
    if config.mode == "finetune":
        return list(model[1].parameters())
    return list(model.parameters())


def stages(backbone: nn.Module) -> list[nn.Module]:
    """A backbone's stages, input first: its top-level children that hold weights, with a
    `features` sequence (torchvision's MobileNet, EfficientNet, ConvNeXt, VGG) or a `blocks`
    sequence (timm's EfficientNet-Lite) split into its blocks."""
    found: list[nn.Module] = []
    for name, child in backbone.named_children():
        if name in ("features", "blocks") and isinstance(child, nn.Sequential):
            found += [block for block in child if any(True for _ in block.parameters())]
        elif any(True for _ in child.parameters()):
            found.append(child)
    return found


def trainable_parameters(model: nn.Module, config: CNNConfig, epoch: int) -> set[int] | None:
    """The ids of the parameters that train in `epoch` (None: all of them). Fine-tuning
    trains the head alone for `freeze_epochs`, then, when `gradual`, one more stage of the
    backbone each epoch from the top down."""
    if config.mode != "finetune" or epoch >= config.freeze_epochs + (
        len(stages(model[0])) if config.gradual else 0
    ):
        return None
    chosen = head_parameters(model, config)
    if config.gradual and epoch >= config.freeze_epochs:
        opened = epoch - config.freeze_epochs + 1
        for stage in stages(model[0])[-opened:]:
            chosen += list(stage.parameters())
    return set(map(id, chosen))


def load_trained(checkpoint: Path, device: Device) -> tuple[nn.Module, CNNConfig]:
    """A trained network from its checkpoint (loaded safely), ready to predict."""
    record = checkpoints.load(checkpoint, CHECKPOINT_KIND)
    config = CNNConfig(**record["config"])
    model = build_model(CNNConfig(**{**record["config"], "weights": "random"}))
    model.load_state_dict(record["model"])
    return model.to(device.torch).to(memory_format=torch.channels_last).eval(), config
