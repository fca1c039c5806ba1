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
import itertools
import json
import os
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset

from core import checkpoints
from core.devices import Device
from core.formula import augment as augmentation
from core.formula import preprocess
from core.formula.alphabet import encode
from core.formula.crnn import CRNN, MODEL_KIND, CRNNConfig
from core.formula.dataset import FolderDataset, Item, SyntheticStream, read_folder, split
from core.formula.decoding import edit_distance, greedy_batch
from core.formula.generate import GenerateConfig, make_one
from core.jobs import Cancelled, CancelToken, JobError, Progress, drive

RUN_KIND = "formula-training"
#: last.pt is also written this often between validations.
SAVE_EVERY_SECONDS = 60.0
_VALIDATION_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20_000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    grad_clip: float = 5.0
    seed: int = 0
    form: str = "mixed"
    style: str = "mixed"
    augment: float = 1.0
    data: tuple[str, ...] = ()  # Baidu-format folders mixed into the stream
    data_share: float = 0.5  # share of each batch drawn from those folders
    val_size: int = 1000
    val_every: int = 500
    workers: int = 1
    # Batches drawn at once and sorted by image width before they are cut, so that a batch
    # pads little (1: no sorting); their order is then shuffled.
    bucket: int = 8
    style_weights: tuple[tuple[str, float], ...] = ()  # () = the generator's default mix
    init: str = ""  # start from this recogniser checkpoint's weights (fine-tuning)
    model: CRNNConfig = field(default_factory=CRNNConfig)

    def __post_init__(self) -> None:
        if self.steps < 4:
            raise ValueError("train for at least 4 steps")
        if min(self.batch_size, self.val_size, self.val_every, self.bucket) < 1:
            raise ValueError("batch size, validation size and interval must be positive")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        data["data"] = list(self.data)
        data["style_weights"] = [list(pair) for pair in self.style_weights]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        values = dict(data)
        values["model"] = CRNNConfig.from_dict(values.get("model", {}))
        values["data"] = tuple(values.get("data", ()))
        values["style_weights"] = tuple(tuple(p) for p in values.get("style_weights", ()))
        return cls(**values)


# ------------------------------------------------------------------------------ data
def model_input(image: np.ndarray, height: int) -> np.ndarray:
    """An RGB or gray image as the model reads it: float32 (height, W), ink 1, paper 0."""
    return 1.0 - preprocess.for_model(image, height=height)


class TrainTransform:
    """Augment (seeded by the item's index), then preprocess for the model."""

    def __init__(self, height: int, strength: float, seed: int) -> None:
        self.height, self.strength, self.seed = height, strength, seed

    def __call__(self, image: np.ndarray, index: int) -> np.ndarray:
        if self.strength > 0:
            rng = np.random.default_rng([self.seed, index])
            image = augmentation.augment(image, rng, self.strength)
        return model_input(image, self.height)


class MixedStream(IterableDataset):
    """The synthetic stream, with a share of items drawn from labelled folders."""

    def __init__(
        self, synthetic: SyntheticStream, folder: FolderDataset | None, share: float, seed: int
    ) -> None:
        self.synthetic, self.folder, self.share, self.seed = synthetic, folder, share, seed

    def __iter__(self) -> Iterator[tuple[np.ndarray, torch.Tensor, str]]:
        stream = iter(self.synthetic)
        if self.folder is None or self.share <= 0:
            yield from stream
            return
        info = torch.utils.data.get_worker_info()
        rng = random.Random(f"{self.seed}:{info.id if info else 0}")
        while True:
            if rng.random() < self.share:
                yield self.folder[rng.randrange(len(self.folder))]
            else:
                yield next(stream)


def collate(batch: Sequence[tuple[np.ndarray, torch.Tensor, str]]) -> dict[str, Any]:
    """Pad images to the widest (with paper, 0) and concatenate the targets for CTC."""
    height = batch[0][0].shape[0]
    widths = torch.tensor([image.shape[1] for image, _, _ in batch])
    images = torch.zeros(len(batch), 1, height, int(widths.max()))
    for i, (image, _, _) in enumerate(batch):
        images[i, 0, :, : image.shape[1]] = torch.from_numpy(image)
    targets = [target for _, target, _ in batch]
    return {
        "images": images,
        "widths": widths,
        "targets": torch.cat(targets),
        "target_lengths": torch.tensor([len(t) for t in targets]),
        "texts": [text for _, _, text in batch],
    }


class WidthBuckets(IterableDataset):
    """Collated batches of similar widths.

    The stream is read in pools of `bucket` batches; each pool is sorted by image width, cut
    into batches and given out in an order seeded by the pool's number. Sorting lowers the
    padding, the convolutions' wasted work, by about a third for mixed formulas. A run that
    has already trained on `seen` items reads the stream from `stream_start(seen)`, the
    start of the pool it stopped in, and skips that pool's batches it had trained on.
    """

    def __init__(
        self, stream: Iterable, batch_size: int, bucket: int, seed: int, seen: int = 0
    ) -> None:
        self.stream, self.batch_size, self.bucket, self.seed = stream, batch_size, bucket, seed
        pool = batch_size * bucket
        self.first_pool, self.skip = seen // pool, (seen % pool) // batch_size

    @staticmethod
    def stream_start(seen: int, batch_size: int, bucket: int) -> int:
        """The stream index where the pool holding item `seen` starts."""
        return seen - seen % (batch_size * bucket)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        items = iter(self.stream)
        info = torch.utils.data.get_worker_info()
        worker = info.id if info else 0
        skip = self.skip if worker == 0 else 0
        for number in itertools.count(self.first_pool):
            pool = [next(items) for _ in range(self.batch_size * self.bucket)]
            pool.sort(key=lambda item: item[0].shape[1])
            batches = [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
            random.Random(f"{self.seed}:{worker}:{number}").shuffle(batches)
            for batch in batches[skip:]:
                yield collate(batch)
            skip = 0


def validation_set(config: TrainConfig) -> list[tuple[np.ndarray, torch.Tensor, str]]:
    """A fixed synthetic set from a seed training never uses."""
    gen = GenerateConfig(1, config.style, config.form, config.seed + _VALIDATION_SEED_OFFSET)
    items = []
    for index in range(config.val_size):
        sample, _, image = make_one(gen, index)
        items.append(
            (
                model_input(image, config.model.height),
                torch.tensor(encode(sample.text)),
                sample.text,
            )
        )
    return items


# --------------------------------------------------------------------------- metrics
@torch.no_grad()
def evaluate_batches(
    model: CRNN, batches: Sequence[dict[str, Any]], device: Device
) -> dict[str, float]:
    """Sequence accuracy and character error rate over prepared batches."""
    was_training = model.training
    model.eval()
    correct = errors = chars = total = 0
    for batch in batches:
        with device.autocast():
            log_probs = model(batch["images"].to(device.torch))
        lengths = model.output_lengths(batch["widths"])
        for text, truth in zip(
            greedy_batch(log_probs.float().cpu().numpy(), lengths.numpy()),
            batch["texts"],
            strict=True,
        ):
            correct += text == truth
            errors += edit_distance(text, truth)
            chars += len(truth)
            total += 1
    model.train(was_training)
    return {"val_acc": correct / max(total, 1), "val_cer": errors / max(chars, 1)}


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


def _worker_init(worker_id: int) -> None:
    """One thread per data worker: the cores belong to training. (Each item seeds its own
    randomness from its index, so workers need no seeding of their own.)"""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


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
    (those progress reports are milestones). `last.pt` is written at every validation,
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
    state = None
    if resume:
        try:
            state = checkpoints.load(out / "last.pt", RUN_KIND)
        except checkpoints.CheckpointError as error:
            raise JobError(f"Cannot resume: {error}") from error
        config = TrainConfig.from_dict(state["config"])
    elif main and (out / "last.pt").exists():
        raise JobError(f"{out} already holds a training run: resume it, or choose a new folder.")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    _seed_everything(config.seed + rank)
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
    step, best_acc, seen = 0, -1.0, 0
    if state is None and config.init:
        try:
            start = checkpoints.load(config.init, MODEL_KIND)
            if CRNNConfig.from_dict(start["model_config"]) != config.model:
                raise checkpoints.CheckpointError(
                    f"{config.init} is a model of another configuration"
                )
            model.load_state_dict(start["model"])
        except (checkpoints.CheckpointError, KeyError, RuntimeError) as error:
            raise JobError(f"Cannot start from {config.init}: {error}") from error
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, best_acc, seen = state["step"], state["best_acc"], state["seen"]
        _set_rng_state(state["rng"])
    trainee = model
    if world > 1:
        trainee = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.kind == "cuda" else None
        )
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)

    folder = None
    if config.data:
        items: list[Item] = []
        for directory in config.data:
            report = drive(read_folder(directory, token), token)
            items.extend(split(report.items, (0.9, 0.1), seed=config.seed)[0])
        # a module-level function: a spawned data worker must be able to unpickle it
        folder = FolderDataset(items, partial(model_input, height=config.model.height))
    transform = TrainTransform(config.model.height, config.augment, config.seed + rank)
    synthetic = SyntheticStream(
        seed=config.seed + 7919 * rank,
        form=config.form,
        style=config.style,
        transform=transform,
        start=WidthBuckets.stream_start(seen, config.batch_size, config.bucket),
        weights=dict(config.style_weights) or None,
    )
    loader = DataLoader(
        WidthBuckets(
            MixedStream(synthetic, folder, config.data_share, config.seed + rank),
            config.batch_size,
            config.bucket,
            config.seed + rank,
            seen,
        ),
        batch_size=None,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        prefetch_factor=4 if config.workers else None,
        worker_init_fn=_worker_init,
        multiprocessing_context="spawn" if config.workers else None,
        # its own generator: iter(loader) must not draw from the global RNG, or a
        # resumed run's dropout would differ from an uninterrupted one
        generator=torch.Generator().manual_seed(config.seed + rank),
    )
    validation = []
    if main:
        yield Progress(step, config.steps, "Drawing the validation set")
        # sorted by width: each validation batch pads little
        val_items = sorted(validation_set(config), key=lambda item: item[0].shape[1])
        validation = [collate(val_items[i : i + 256]) for i in range(0, len(val_items), 256)]
    log_path = out / "log.csv"

    def save_last() -> None:
        nonlocal saved_at, saved_step
        checkpoints.save(
            out / "last.pt",
            {
                "config": config.to_dict(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "best_acc": best_acc,
                "seen": seen,
                "rng": _rng_state(),
                "device": str(device),
            },
            RUN_KIND,
        )
        _write_state(out, step, config.steps)
        saved_at, saved_step = time.monotonic(), step

    saved_at, saved_step = time.monotonic(), step
    metrics: dict[str, float] = {}
    loss_avg = None
    started, images_since, clock = time.monotonic(), 0, time.monotonic()
    if main:
        yield Progress(step, config.steps, "Training", metrics)
    batches = iter(loader)
    trainee.train()
    try:
        while step < config.steps:
            token.raise_if_cancelled()
            batch = next(batches)
            images = batch["images"].to(
                device.torch, memory_format=torch.channels_last, non_blocking=True
            )
            with device.autocast(cpu_bf16=True):
                log_probs = trainee(images)
            lengths = model.output_lengths(batch["widths"])
            loss = ctc(log_probs.float(), batch["targets"], lengths, batch["target_lengths"])
            if not torch.isfinite(loss):
                raise JobError(
                    f"The loss became {loss.item()} at step {step + 1}; training stopped. "
                    f"The last good state is in {out / 'last.pt'}: lower the learning rate "
                    f"(now {config.lr}) and resume."
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            seen += len(batch["texts"])
            images_since += len(batch["texts"]) * world
            value = loss.item()
            # a plain mean over the first 10 steps, then an exponential moving average
            weight = max(0.1, 1 / (step - (state["step"] if state else 0)))
            loss_avg = value if loss_avg is None else (1 - weight) * loss_avg + weight * value
            if not main:
                continue
            now = time.monotonic()
            metrics = {
                **metrics,
                "loss": round(loss_avg, 4),
                "lr": float(f"{scheduler.get_last_lr()[0]:.3g}"),
            }
            if now - clock >= 2:
                metrics["images/s"] = round(images_since / (now - clock), 1)
                images_since, clock = 0, now
            validated = step % config.val_every == 0 or step == config.steps
            if validated:
                metrics.update(
                    {k: round(v, 5) for k, v in evaluate_batches(model, validation, device).items()}
                )
                if metrics["val_acc"] > best_acc:
                    best_acc = metrics["val_acc"]
                    save_model(out / "best.pt", model, config, step, metrics)
                save_last()
                _append_log(log_path, step, time.monotonic() - started, metrics)
            elif now - saved_at >= SAVE_EVERY_SECONDS:
                save_last()  # between validations too: a crash loses minutes at most
            # a milestone only where a validation happened: its point on the curve
            yield Progress(step, config.steps, f"step {step:,}", metrics, validated)
    except (Cancelled, GeneratorExit):
        # a cancelled run keeps every step it made: Resume continues from there
        if main and step > saved_step:
            save_last()
        raise
    if world > 1:
        dist.barrier()
    return {"step": step, "best_acc": best_acc, **metrics}


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
