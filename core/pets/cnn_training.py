"""The CNN's training loop and its predictions: epochs of small steps, the best checkpoint
kept by validation loss, and the test images predicted (averaged with their mirror image)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from core import checkpoints
from core.devices import Device
from core.jobs import CancelToken, JobError, Progress
from core.pets.cnn import (
    CHECKPOINT_KIND,
    MEAN,
    STD,
    CNNConfig,
    build_model,
    head_parameters,
    normalisation,
    trainable_parameters,
)
from core.pets.train_data import PetImages, _seed_worker, normalise


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


class _Run:
    """What one CNN run trains and saves: the model, its optimiser (the new head at ten
    times the pretrained layers' rate), the one-cycle schedule and the gradient scaler."""

    def __init__(self, config: CNNConfig, device: Device, steps_per_epoch: int) -> None:
        self.config, self.device = config, device
        self.model = build_model(config).to(device.torch).to(memory_format=torch.channels_last)
        # A fine-tuned backbone's new head starts from nothing: it learns at ten times the
        # rate of the pretrained layers, which would lose what they know at that rate.
        head = set(map(id, head_parameters(self.model, config)))
        groups = [
            {"params": [p for p in self.model.parameters() if id(p) not in head], "lr": config.lr},
            {"params": [p for p in self.model.parameters() if id(p) in head], "lr": config.lr * 10},
        ]
        if config.mode != "finetune":
            groups = [{"params": list(self.model.parameters()), "lr": config.lr}]
        self.optimiser = torch.optim.AdamW(groups, weight_decay=1e-4)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimiser,
            max_lr=[group["lr"] for group in groups],
            total_steps=config.epochs * steps_per_epoch,
            # the warm-up must span at least one step and a bit, or one-cycle divides by
            # zero on a few batches (it lasts pct_start × steps − 1 steps)
            pct_start=min(0.75, max(0.2, 1.5 / (config.epochs * steps_per_epoch))),
        )
        self.scaler = torch.amp.GradScaler(device.kind, enabled=device.needs_grad_scaler)
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.checkpoint: Path | None = None  # where it is saved, for messages

    def restore(self, checkpoint: Path) -> int:
        """Load the checkpoint of a cancelled run; returns the epochs it finished."""
        record = checkpoints.load(checkpoint, CHECKPOINT_KIND)
        if record["config"] != asdict(self.config):
            raise JobError(f"{checkpoint} was made with another configuration; start afresh.")
        self.model.load_state_dict(record["model"])
        self.optimiser.load_state_dict(record["optimiser"])
        self.scheduler.load_state_dict(record["scheduler"])
        self.scaler.load_state_dict(record["scaler"])
        torch.set_rng_state(record["torch_rng"])
        return int(record["epoch"])

    def save(self, checkpoint: Path, epoch: int, metrics: dict[str, float]) -> None:
        self.checkpoint = checkpoint
        record = {
            "config": asdict(self.config),
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "metrics": metrics,
        }
        checkpoints.save(checkpoint, record, CHECKPOINT_KIND)

    def begin_epoch(self, epoch: int) -> bool:
        """Train the layers this epoch trains (the rest frozen, keeping their ImageNet batch
        statistics); True when some are frozen."""
        trainable = trainable_parameters(self.model, self.config, epoch)
        frozen = trainable is not None
        for parameter in self.model.parameters():
            parameter.requires_grad_(trainable is None or id(parameter) in trainable)
        self.model.train()
        if frozen:
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                    p.requires_grad for p in module.parameters(recurse=False)
                ):
                    module.eval()
        return frozen

    def optimise(self, x: torch.Tensor, y: torch.Tensor, where: str) -> tuple[torch.Tensor, float]:
        """One step on a batch; (logits, loss). A loss that is not finite stops the run."""
        with self.device.autocast():
            logits = self.model(x).float().squeeze(1)
            loss = self.loss_fn(logits, y)
        if not torch.isfinite(loss):
            raise JobError(
                f"The loss became {loss.item()} at {where}: lower the learning rate. The "
                f"checkpoint of the last finished epoch is intact ({self.checkpoint})."
            )
        self.optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimiser)
        nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.scaler.step(self.optimiser)
        self.scaler.update()
        self.scheduler.step()
        return logits, float(loss.detach())


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
    steps_per_epoch = max(1, (len(train_data) + config.batch_size - 1) // config.batch_size)
    run = _Run(config, device, steps_per_epoch)
    run.checkpoint = checkpoint
    start_epoch = run.restore(checkpoint) if resume and checkpoint.exists() else 0
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
        seen = yield from _epoch(run, loader, epoch, step, total, token)
        step += len(loader)
        metrics = yield from _validate(run, val_data, token)
        run.save(checkpoint, epoch + 1, metrics)
        yield Progress(
            step,
            total,
            f"Epoch {epoch + 1} of {config.epochs}: validation log loss {metrics['val_loss']:.4f}",
            {"loss": seen["loss"], **metrics, "epoch": epoch + 1},
            milestone=True,
        )
    return run.model


def _epoch(
    run: _Run, loader: DataLoader, epoch: int, step: int, total: int, token: CancelToken
) -> Iterator[Progress]:
    """One pass over the training images; returns the epoch's mean loss and accuracy."""
    config, device = run.config, run.device
    stats = normalisation(config)
    frozen = run.begin_epoch(epoch)
    title = f"Epoch {epoch + 1} of {config.epochs}" + (" (partly frozen)" if frozen else "")
    seen, correct, loss_sum, started = 0, 0, 0.0, time.perf_counter()
    for images, labels in loader:
        token.raise_if_cancelled()
        x = normalise(images, device, *stats)
        y = labels.to(device.torch).float()
        logits, loss = run.optimise(x, y, f"epoch {epoch + 1}")
        seen += len(y)
        correct += int(((logits > 0).float() == y).sum())
        loss_sum += loss * len(y)
        step += 1
        rate = seen / max(time.perf_counter() - started, 1e-9)
        metrics = {
            "loss": loss_sum / seen,
            "accuracy": correct / seen,
            "lr": run.scheduler.get_last_lr()[0],
            "images/s": rate,
        }
        yield Progress(step, total, title, metrics)
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1)}


def _validate(run: _Run, val_data: PetImages, token: CancelToken) -> Iterator[Progress]:
    """The validation split's log loss and accuracy, predicted as the app predicts."""
    from core.pets.metrics import log_loss

    p = yield from predict(run.model, val_data, run.device, token, stats=normalisation(run.config))
    y_val = val_data.labels
    return {
        "val_loss": log_loss(y_val, p),
        "val_accuracy": float(np.mean((p >= 0.5) == (y_val == 1))) if len(p) else 0.0,
    }
