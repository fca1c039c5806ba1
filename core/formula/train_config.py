"""How a formula recogniser is trained, as one dataclass saved with every run
(`config.json`) and read back to resume it; and how many data processes feed the training."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from core.devices import Device
from core.formula.model_config import CRNNConfig


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
        if not 0 <= self.data_share <= 1:
            raise ValueError("the share drawn from the data folders is between 0 and 1")

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


def default_workers(device: Device, world: int = 1) -> int:
    """Data workers for each of `world` processes training on `device`: one on a CPU, whose
    cores train the model; on a GPU every core but two, shared between the processes, since
    drawing the images sets the pace there (one process draws about 220 images a second; an
    H200 trains the large model on 4,600: docs/benchmarks.md)."""
    if device.kind == "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows
        cores = os.cpu_count() or 2
    return max(1, min(16, (cores - 2) // max(1, world)))
