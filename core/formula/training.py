"""Training the formula recogniser: a job on the synthetic stream (and optional Baidu
folders), with CTC, AdamW and a one-cycle schedule, atomic checkpoints, resume, and
DistributedDataParallel when launched by `torchrun`.

A run folder holds `config.json` (the resolved configuration), `log.csv` (one row per
validation), `last.pt` (everything needed to resume) and `best.pt` (the model with the best
validation sequence accuracy, which the recogniser loads).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from core import checkpoints
from core.devices import Device
from core.formula.crnn import CRNN
from core.formula.evaluation import evaluate_batches
from core.formula.model_config import MODEL_KIND, CRNNConfig
from core.formula.train_config import TrainConfig
from core.formula.train_data import collate, make_loader, validation_set
from core.jobs import Cancelled, CancelToken, JobError, Progress

RUN_KIND = "formula-training"
#: last.pt is also written this often between validations.
SAVE_EVERY_SECONDS = 60.0


# --------------------------------------------------------------------- distribution
def _distributed() -> tuple[int, int]:
    """(rank, world size): set up the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), world


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))


# ----------------------------------------------------------------------------- the job
def train(
    out: Path | str,
    config: TrainConfig,
    device: Device,
    token: CancelToken,
    resume: bool = False,
) -> Iterator[Progress]:
    """Job: train a recogniser into the run folder `out`; returns the final metrics.

    Progress metrics: loss, lr, images/s, and val_acc / val_cer after each validation
    (those progress reports are milestones). `best.pt` is the model of the best validation,
    `final.pt` the model at the schedule's last step. `last.pt` is written at every validation,
    every SAVE_EVERY_SECONDS between them, and when the run is cancelled, so `resume`
    continues from the last step made. A loss that turns NaN or infinite stops the run with
    a JobError; `last.pt` then still holds the last good state. A new run that stops before
    it has saved anything leaves no folder behind.
    """
    out = Path(out)
    new_folder = not out.exists()
    ours = [out / n for n in ("config.json", "log.csv") if not (out / n).exists()]
    try:
        return (yield from _train(out, config, device, token, resume))
    except BaseException:
        if not resume and not (out / "last.pt").exists():
            for path in ours:  # the files this run wrote, never the user's
                path.unlink(missing_ok=True)
            if new_folder:
                with contextlib.suppress(OSError):
                    out.rmdir()  # only when nothing else is in it
        raise


def _train(
    out: Path, config: TrainConfig, device: Device, token: CancelToken, resume: bool
) -> Iterator[Progress]:
    rank, world = _distributed()
    main = rank == 0
    if device.kind == "cuda" and world > 1:
        device = replace(device, index=int(os.environ.get("LOCAL_RANK", 0)))
    state, config = _previous_state(out, config, resume, main)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    _seed_everything(config.seed + rank)
    run = _Run.create(config, device)
    run.restore(config, state)
    trainee: torch.nn.Module = run.model
    if world > 1:
        trainee = torch.nn.parallel.DistributedDataParallel(
            run.model, device_ids=[device.index] if device.kind == "cuda" else None
        )
    loader = make_loader(config, rank, run.seen, token)
    validation = []
    if main:
        yield Progress(run.step, config.steps, "Drawing the validation set")
        # sorted by width: each validation batch pads little
        val_items = sorted(validation_set(config), key=lambda item: item[0].shape[1])
        validation = [collate(val_items[i : i + 256]) for i in range(0, len(val_items), 256)]
    return (
        yield from _loop(out, config, device, token, run, trainee, loader, validation, world, main)
    )


def _previous_state(
    out: Path, config: TrainConfig, resume: bool, main: bool
) -> tuple[dict[str, Any] | None, TrainConfig]:
    """last.pt's state and configuration when resuming (the run's own configuration wins);
    a refusal when a new run would overwrite one."""
    if resume:
        try:
            state = checkpoints.load(out / "last.pt", RUN_KIND)
        except checkpoints.CheckpointError as error:
            raise JobError(f"Cannot resume: {error}") from error
        return state, TrainConfig.from_dict(state["config"])
    if main and (out / "last.pt").exists():
        raise JobError(f"{out} already holds a training run: resume it, or choose a new folder.")
    return None, config


@dataclass
class _Run:
    """What a run trains and how far it is: model, optimiser, schedule, gradient scaler,
    the step, the best validation accuracy and the items seen."""

    model: CRNN
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.OneCycleLR
    scaler: torch.amp.GradScaler
    step: int = 0
    best_acc: float = -1.0
    seen: int = 0
    resumed_at: int = 0  # the step the run started from in this process

    @classmethod
    def create(cls, config: TrainConfig, device: Device) -> _Run:
        # channels-last convolutions: 1.1× faster training on a CPU
        model = CRNN(config.model).to(device.torch, memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=config.steps,
            pct_start=min(0.5, max(0.1, 2.5 / config.steps)),  # at least two warm-up steps
            anneal_strategy="cos",
        )
        scaler = torch.amp.GradScaler("cuda", enabled=device.needs_grad_scaler)
        return cls(model, optimizer, scheduler, scaler)

    def restore(self, config: TrainConfig, state: dict[str, Any] | None) -> None:
        """Continue a saved run (`state`), or start from `config.init`'s weights."""
        if state is None and config.init:
            try:
                start = checkpoints.load(config.init, MODEL_KIND)
                if CRNNConfig.from_dict(start["model_config"]) != config.model:
                    raise checkpoints.CheckpointError(
                        f"{config.init} is a model of another configuration"
                    )
                self.model.load_state_dict(start["model"])
            except (checkpoints.CheckpointError, KeyError, RuntimeError) as error:
                raise JobError(f"Cannot start from {config.init}: {error}") from error
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            self.step, self.best_acc, self.seen = state["step"], state["best_acc"], state["seen"]
            self.resumed_at = self.step
            _set_rng_state(state["rng"])

    def state(self, config: TrainConfig, device: Device) -> dict[str, Any]:
        """Everything last.pt needs to resume exactly."""
        return {
            "config": config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best_acc": self.best_acc,
            "seen": self.seen,
            "rng": _rng_state(),
            "device": str(device),
        }

    def optimise(
        self,
        trainee: torch.nn.Module,
        batch: dict[str, Any],
        device: Device,
        config: TrainConfig,
        out: Path,
    ) -> float:
        """One step on `batch`; its loss. A loss that is not finite stops the run."""
        images = batch["images"].to(
            device.torch, memory_format=torch.channels_last, non_blocking=True
        )
        with device.autocast(cpu_bf16=True):
            log_probs = trainee(images)
        lengths = self.model.output_lengths(batch["widths"])
        loss = _CTC(log_probs.float(), batch["targets"], lengths, batch["target_lengths"])
        if not torch.isfinite(loss):
            raise JobError(
                f"The loss became {loss.item()} at step {self.step + 1}; training stopped. "
                f"The last good state is in {out / 'last.pt'}: lower the learning rate "
                f"(now {config.lr}) and resume."
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self.seen += len(batch["texts"])
        return loss.item()


_CTC = torch.nn.CTCLoss(blank=0, zero_infinity=True)


def _loop(
    out: Path,
    config: TrainConfig,
    device: Device,
    token: CancelToken,
    run: _Run,
    trainee: torch.nn.Module,
    loader: Iterable[dict[str, Any]],
    validation: list[dict[str, Any]],
    world: int,
    main: bool,
) -> Iterator[Progress]:
    """Train until `config.steps`: validate, keep the best model and save last.pt as the
    job's docstring says; only the main process (rank 0) reports and saves."""
    log_path = out / "log.csv"

    def save_last() -> None:
        nonlocal saved_at, saved_step
        checkpoints.save(out / "last.pt", run.state(config, device), RUN_KIND)
        _write_state(out, run.step, config.steps)
        saved_at, saved_step = time.monotonic(), run.step

    saved_at, saved_step = time.monotonic(), run.step
    metrics: dict[str, float] = {}
    loss_avg = None
    started, images_since, clock = time.monotonic(), 0, time.monotonic()
    if main:
        yield Progress(run.step, config.steps, "Training", metrics)
    batches = iter(loader)
    trainee.train()
    try:
        while run.step < config.steps:
            token.raise_if_cancelled()
            batch = next(batches)
            value = run.optimise(trainee, batch, device, config, out)
            images_since += len(batch["texts"]) * world
            # a plain mean over the first 10 steps, then an exponential moving average
            weight = max(0.1, 1 / (run.step - run.resumed_at))
            loss_avg = value if loss_avg is None else (1 - weight) * loss_avg + weight * value
            if not main:
                continue
            now = time.monotonic()
            metrics = {
                **metrics,
                "loss": round(loss_avg, 4),
                "lr": float(f"{run.scheduler.get_last_lr()[0]:.3g}"),
            }
            if now - clock >= 2:
                metrics["images/s"] = round(images_since / (now - clock), 1)
                images_since, clock = 0, now
            validated = run.step % config.val_every == 0 or run.step == config.steps
            if validated:
                scores = evaluate_batches(run.model, validation, device)
                metrics.update({k: round(v, 5) for k, v in scores.items()})
                if metrics["val_acc"] > run.best_acc:
                    run.best_acc = metrics["val_acc"]
                    save_model(out / "best.pt", run.model, config, run.step, metrics)
                if run.step == config.steps:  # the end of the schedule, best or not
                    save_model(out / "final.pt", run.model, config, run.step, metrics)
                save_last()
                _append_log(log_path, run.step, time.monotonic() - started, metrics)
            elif now - saved_at >= SAVE_EVERY_SECONDS:
                save_last()  # between validations too: a crash loses minutes at most
            # a milestone only where a validation happened: its point on the curve
            yield Progress(run.step, config.steps, f"step {run.step:,}", metrics, validated)
    except (Cancelled, GeneratorExit):
        # a cancelled run keeps every step it made: Resume continues from there
        if main and run.step > saved_step:
            save_last()
        raise
    if world > 1:
        dist.barrier()
    return {"step": run.step, "best_acc": run.best_acc, **metrics}


def _write_state(out: Path, step: int, steps: int) -> None:
    """`last.json` beside last.pt: the step it holds, for run lists that must not load it."""
    temporary = out / ".last.json.tmp"
    temporary.write_text(json.dumps({"step": step, "steps": steps}) + "\n")
    os.replace(temporary, out / "last.json")


def save_model(
    path: Path, model: CRNN, config: TrainConfig, step: int, metrics: dict[str, float]
) -> Path:
    """The recogniser's checkpoint: weights, model config, how it was trained, scores."""
    return checkpoints.save(
        path,
        {
            "model": model.state_dict(),
            "model_config": model.config.to_dict(),
            "train_config": config.to_dict(),
            "step": step,
            "metrics": {k: float(v) for k, v in metrics.items()},
        },
        MODEL_KIND,
    )


def _append_log(path: Path, step: int, elapsed: float, metrics: dict[str, float]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        columns = ["loss", "lr", "images/s", "val_acc", "val_cer"]
        if new:
            writer.writerow(["step", "seconds", *columns])
        writer.writerow([step, round(elapsed, 1), *(metrics.get(c, "") for c in columns)])
