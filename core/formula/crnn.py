"""The formula recogniser: a small CNN, a bidirectional GRU (or LSTM) and a linear layer
over the 17 classes (blank first), trained with CTC.

Input: float (N, 1, H, W), ink high and paper 0, H fixed by the config, W free. Output:
log-posteriors (T, N, 17) with T = W // 2. The CNN halves the width once and reduces the
height to 1, so each time step reads a 2-pixel-wide column band; `column_span` says which
input pixels a step sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

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


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class CRNN(nn.Module):
    def __init__(self, config: CRNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or CRNNConfig()
        c1, c2, c3, c4, c5 = config.channels
        self.cnn = nn.Sequential(
            *_conv(1, c1),
            nn.MaxPool2d(2, 2),
            *_conv(c1, c2),
            nn.MaxPool2d((2, 1), (2, 1)),
            *_conv(c2, c3),
            *_conv(c3, c4),
            nn.MaxPool2d((2, 1), (2, 1)),
            *_conv(c4, c5),
        )
        rnn = nn.GRU if config.rnn == "gru" else nn.LSTM
        self.rnn = rnn(
            c5,
            config.hidden,
            num_layers=config.layers,
            bidirectional=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * config.hidden, config.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) → log-posteriors (T, N, classes), T = W // 2."""
        features = self.cnn(images).mean(dim=2)  # (N, C, T): the height averaged away
        sequence = features.permute(2, 0, 1)  # (T, N, C)
        sequence, _ = self.rnn(sequence)
        logits = self.head(self.dropout(sequence))
        return logits.float().log_softmax(dim=-1)

    def output_lengths(self, widths: torch.Tensor) -> torch.Tensor:
        return torch.div(widths, self.config.stride, rounding_mode="floor")

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def column_span(step: int, config: CRNNConfig) -> tuple[float, float]:
    """The input x-range (pixels, at the model's height) that time step `step` reads
    through its convolutions: centred on its 2-pixel band, `receptive_field` wide."""
    centre = config.stride * step + config.stride / 2
    half = config.receptive_field / 2
    return centre - half, centre + half
