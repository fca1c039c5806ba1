"""The recogniser's shape, without torch: its configuration (saved with every checkpoint),
its checkpoint kind, and which input columns each time step reads. The window, the
command line's parser and the training configuration need these before any model runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from core.formula.alphabet import NUM_CLASSES

#: The checkpoint kind of a recogniser's weights (best.pt, the shipped model).
MODEL_KIND = "formula-crnn"


@dataclass(frozen=True)
class CRNNConfig:
    height: int = 32
    # Sized for two CPU cores: about 4 ms for one 180×60 image, 750 images/s in batches.
    channels: tuple[int, ...] = (16, 32, 64, 64, 96)
    rnn: str = "gru"  # "gru" or "lstm"
    hidden: int = 96
    layers: int = 2
    dropout: float = 0.1
    num_classes: int = NUM_CLASSES

    def __post_init__(self) -> None:
        if len(self.channels) != 5:
            raise ValueError("channels needs five numbers, one per convolution")
        if self.rnn not in ("gru", "lstm"):
            raise ValueError("rnn is 'gru' or 'lstm'")
        if self.height % 8:
            raise ValueError("height must be a multiple of 8")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CRNNConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "channels" in values:
            values["channels"] = tuple(values["channels"])
        return cls(**values)

    @classmethod
    def preset(cls, name: str) -> CRNNConfig:
        """ "small" (0.4M parameters, trains on 2 CPU cores) or "large" (3M, for a GPU)."""
        if name == "small":
            return cls()
        if name == "large":
            return cls(height=48, channels=(64, 128, 192, 192, 256), hidden=256, layers=2)
        raise ValueError(f"unknown model size {name!r}: small or large")

    @property
    def stride(self) -> int:
        """The CNN's horizontal stride: input pixels per time step (one 2×2 pooling)."""
        return 2

    @property
    def receptive_field(self) -> int:
        """Input pixels one time step sees through the convolutions (before the RNN):
        3 (conv) → 4 (pool ×2) → 8, 12, 16, 20 (four more 3×3 convs at stride 2)."""
        return 20


def column_span(step: int, config: CRNNConfig) -> tuple[float, float]:
    """The input x-range (pixels, at the model's height) that time step `step` reads
    through its convolutions: centred on its 2-pixel band, `receptive_field` wide."""
    centre = config.stride * step + config.stride / 2
    half = config.receptive_field / 2
    return centre - half, centre + half
