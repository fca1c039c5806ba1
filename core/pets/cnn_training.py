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
