"""Convolutional networks for cats against dogs: a small CNN trained from scratch (no
weights at all) and an ImageNet backbone (installed or torchvision's) fine-tuned with a new
one-logit head; the data they read and the loop that trains them.

The loop is a job: progress per batch with loss, accuracy, images/s; validation after every
epoch; an atomic checkpoint (model, optimiser, scheduler, scaler, epoch, config, RNG) after
every epoch, from which a cancelled run resumes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core import checkpoints
from core.devices import Device
from core.images import ImageProblem
from core.jobs import CancelToken, JobError, Progress
from core.pets import backbones, imagenet
from core.pets.image_decoding import decode_pet
from core.pets.sources import Source, SourceError

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


class PetImages(Dataset):
    """Images of the store decoded at a reduced scale; training crops are augmented (flip,
    random resized crop, colour jitter: nothing that changes the class)."""

    def __init__(
        self, source: Source, paths: Sequence[str], labels: np.ndarray, size: int, train: bool
    ) -> None:
        from torchvision.transforms import v2

        self.source, self.paths, self.labels = source, list(paths), labels
        self.size, self.train = size, train
        if train:
            self.transform = v2.Compose(
                [
                    v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
                    v2.RandomHorizontalFlip(),
                    v2.ColorJitter(0.2, 0.2, 0.2, 0.02),
                ]
            )
        else:
            self.transform = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> torch.Tensor:
        """uint8 (3, H, W), the shorter side at least the crop size."""
        try:
            array = decode_pet(self.source.read(self.paths[index]), min_side=self.size).image
        except (ImageProblem, SourceError, KeyError) as error:
            raise JobError(f"{self.paths[index]} cannot be read: {error}") from error
        return torch.from_numpy(np.array(array, copy=True)).permute(2, 0, 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        return self.transform(self.image(index)), float(self.labels[index])


def normalise(
    batch: torch.Tensor,
    device: Device,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    mean = torch.tensor(mean, device=device.torch).view(1, 3, 1, 1) * 255
    std = torch.tensor(std, device=device.torch).view(1, 3, 1, 1) * 255
    x = batch.to(device.torch, non_blocking=True).float()
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def predict(
    model: nn.Module,
    data: PetImages,
    device: Device,
    token: CancelToken,
    flip: bool = False,
    batch_size: int = 64,
    stats: tuple[Sequence[float], Sequence[float]] = (MEAN, STD),
) -> Iterator[Progress]:
    """Job: P(dog) for every image of `data` (centre crops, normalised with `stats`, the
    (mean, std) of `normalisation`), averaged with the mirror image when `flip`; returns
    float64 (n,)."""
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)
    out: list[np.ndarray] = []
    model.eval()
    done = 0
    with torch.inference_mode():
        for images, _labels in loader:
            token.raise_if_cancelled()
            x = normalise(images, device, *stats)
            with device.inference_autocast():
                logits = model(x).float().squeeze(1)
                if flip:
                    logits = (logits + model(torch.flip(x, dims=[3])).float().squeeze(1)) / 2
            out.append(torch.sigmoid(logits).cpu().numpy().astype(np.float64))
            done += len(images)
            yield Progress(done, len(data), f"Predicting {done:,} of {len(data):,}")
    return np.concatenate(out) if out else np.zeros(0)


def train(
    config: CNNConfig,
    train_data: PetImages,
    val_data: PetImages,
    device: Device,
    token: CancelToken,
    checkpoint: Path,
    resume: bool = True,
) -> Iterator[Progress]:
    """Job: train, validating after each epoch and checkpointing atomically; returns the
    trained model (on `device`). Resumes from `checkpoint` when it exists and `resume`."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    model = build_model(config).to(device.torch).to(memory_format=torch.channels_last)
    stats = normalisation(config)
    # A fine-tuned backbone's new head starts from nothing: it learns at ten times the
    # rate of the pretrained layers, which would lose what they know at that rate.
    head = set(map(id, head_parameters(model, config)))
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in head], "lr": config.lr},
        {"params": [p for p in model.parameters() if id(p) in head], "lr": config.lr * 10},
    ]
    if config.mode != "finetune":
        groups = [{"params": list(model.parameters()), "lr": config.lr}]
    optimiser = torch.optim.AdamW(groups, weight_decay=1e-4)
    steps_per_epoch = max(1, (len(train_data) + config.batch_size - 1) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        max_lr=[group["lr"] for group in groups],
        total_steps=config.epochs * steps_per_epoch,
        # the warm-up must span at least one step and a bit, or one-cycle divides by zero
        # on a few batches (it lasts pct_start × steps − 1 steps)
        pct_start=min(0.75, max(0.2, 1.5 / (config.epochs * steps_per_epoch))),
    )
    scaler = torch.amp.GradScaler(device.kind, enabled=device.needs_grad_scaler)
    start_epoch = 0
    if resume and checkpoint.exists():
        record = checkpoints.load(checkpoint, CHECKPOINT_KIND)
        if record["config"] != asdict(config):
            raise JobError(f"{checkpoint} was made with another configuration; start afresh.")
        model.load_state_dict(record["model"])
        optimiser.load_state_dict(record["optimiser"])
        scheduler.load_state_dict(record["scheduler"])
        scaler.load_state_dict(record["scaler"])
        torch.set_rng_state(record["torch_rng"])
        start_epoch = int(record["epoch"])
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        train_data,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=len(train_data) > config.batch_size,
        num_workers=config.workers,
        worker_init_fn=_seed_worker,
        generator=generator,
        persistent_workers=False,
    )
    total = config.epochs * len(loader)
    step = start_epoch * len(loader)
    yield Progress(step, total, f"Training from epoch {start_epoch + 1}")
    for epoch in range(start_epoch, config.epochs):
        generator.manual_seed(config.seed + epoch)
        trainable = trainable_parameters(model, config, epoch)
        frozen = trainable is not None
        for parameter in model.parameters():
            parameter.requires_grad_(trainable is None or id(parameter) in trainable)
        model.train()
        if frozen:  # frozen layers keep their ImageNet batch statistics
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                    p.requires_grad for p in module.parameters(recurse=False)
                ):
                    module.eval()
        seen, correct, loss_sum, started = 0, 0, 0.0, time.perf_counter()
        for images, labels in loader:
            token.raise_if_cancelled()
            x = normalise(images, device, *stats)
            y = labels.to(device.torch).float()
            with device.autocast():
                logits = model(x).float().squeeze(1)
                loss = loss_fn(logits, y)
            if not torch.isfinite(loss):
                raise JobError(
                    f"The loss became {loss.item()} at epoch {epoch + 1}: lower the learning "
                    f"rate. The checkpoint of the last finished epoch is intact ({checkpoint})."
                )
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimiser)
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            seen += len(y)
            correct += int(((logits > 0).float() == y).sum())
            loss_sum += float(loss.detach()) * len(y)
            step += 1
            rate = seen / max(time.perf_counter() - started, 1e-9)
            yield Progress(
                step,
                total,
                f"Epoch {epoch + 1} of {config.epochs}" + (" (partly frozen)" if frozen else ""),
                {
                    "loss": loss_sum / seen,
                    "accuracy": correct / seen,
                    "lr": scheduler.get_last_lr()[0],
                    "images/s": rate,
                },
            )
        p = yield from predict(model, val_data, device, token, stats=stats)
        from core.pets.metrics import log_loss

        y_val = val_data.labels
        val_metrics = {
            "val_loss": log_loss(y_val, p),
            "val_accuracy": float(np.mean((p >= 0.5) == (y_val == 1))) if len(p) else 0.0,
        }
        checkpoints.save(
            checkpoint,
            {
                "config": asdict(config),
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "epoch": epoch + 1,
                "metrics": val_metrics,
            },
            CHECKPOINT_KIND,
        )
        yield Progress(
            step,
            total,
            f"Epoch {epoch + 1} of {config.epochs}: validation log loss "
            f"{val_metrics['val_loss']:.4f}",
            {"loss": loss_sum / max(seen, 1), **val_metrics, "epoch": epoch + 1},
            milestone=True,
        )
    return model


def load_trained(checkpoint: Path, device: Device) -> tuple[nn.Module, CNNConfig]:
    """A trained network from its checkpoint (loaded safely), ready to predict."""
    record = checkpoints.load(checkpoint, CHECKPOINT_KIND)
    config = CNNConfig(**record["config"])
    model = build_model(CNNConfig(**{**record["config"], "weights": "random"}))
    model.load_state_dict(record["model"])
    return model.to(device.torch).to(memory_format=torch.channels_last).eval(), config


def augmented_samples(
    source: Source, paths: Sequence[str], size: int, per_image: int = 4, seed: int = 0
) -> list[list[np.ndarray]]:
    """What training sees: for each path, `per_image` augmented crops (uint8 H×W×3), drawn
    with the training transforms and a seed."""
    torch.manual_seed(seed)
    data = PetImages(source, paths, np.zeros(len(paths)), size, train=True)
    out = []
    for index in range(len(paths)):
        image = data.image(index)
        out.append(
            [data.transform(image).permute(1, 2, 0).contiguous().numpy() for _ in range(per_image)]
        )
    return out
