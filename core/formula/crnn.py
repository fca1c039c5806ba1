"""The formula recogniser: a small CNN, a bidirectional GRU (or LSTM) and a linear layer
over the 17 classes (blank first), trained with CTC.

Input: float (N, 1, H, W), ink high and paper 0, H fixed by the config, W free. Output:
log-posteriors (T, N, 17) with T = W // 2. The CNN halves the width once and reduces the
height to 1, so each time step reads a 2-pixel-wide column band; `column_span` says which
input pixels a step sees.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from threadpoolctl import ThreadpoolController
from torch import nn

from core.formula.model_config import CRNNConfig


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

    def forward(self, images: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 1, H, W) → log-posteriors (T, N, classes), T = W // 2.

        `lengths`: each image's own time steps where a batch pads narrower images with
        paper on the right. The recurrent layer then reads each image from its own end
        backwards, as it reads the image alone, and the convolutions see paper (zeros)
        beyond its right edge, as they do alone; without them an image can read differently
        in a batch than alone. The steps past an image's length are not meaningful."""
        steps = images.shape[-1] // self.config.stride
        if lengths is not None and bool((lengths >= steps).all()):
            lengths = None  # no padding
        features = self._features(images, lengths, steps)  # (N, C, T)
        sequence = features.permute(2, 0, 1)  # (T, N, C)
        if self._reads_gru_in_numpy(sequence):
            own = None if lengths is None else lengths.cpu().numpy()
            sequence = torch.from_numpy(small_batch_gru(self.rnn, sequence.numpy(), own))
        elif sequence.is_cuda:
            # in float32 under autocast too: cuDNN's recurrent layers take bfloat16 only
            # from cuDNN 9.13, and the GRU is a small share of the work
            with torch.autocast("cuda", enabled=False):
                sequence = self._recurrent(sequence.float(), lengths)
        else:
            sequence = self._recurrent(sequence, lengths)
        logits = self.head(self.dropout(sequence))
        return logits.float().log_softmax(dim=-1)

    def _features(
        self, images: torch.Tensor, lengths: torch.Tensor | None, steps: int
    ) -> torch.Tensor:
        """The CNN's features, the height averaged away. With `lengths`, what each
        convolution reads at the time steps' resolution is zeroed past each image's length,
        as its zero padding would be if the image were alone (before the first pooling the
        padded input is paper, 0, already, and the pooling drops an odd last column)."""
        if lengths is None:
            return self.cnn(images).mean(dim=2)
        columns = torch.arange(steps, device=images.device)
        own = (columns[None, :] < lengths.to(images.device)[:, None])[:, None, None, :]
        x = images
        for layer in self.cnn:
            x = layer(x)
            if isinstance(layer, nn.ReLU | nn.MaxPool2d) and x.shape[-1] == steps:
                x = x * own.to(x.dtype)
        return x.mean(dim=2)

    def _recurrent(self, sequence: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Torch's recurrent layer over (T, N, C), packed to `lengths` where given."""
        if lengths is None:
            return self.rnn(sequence)[0]
        packed = nn.utils.rnn.pack_padded_sequence(
            sequence, lengths.cpu().clamp(1, sequence.shape[0]), enforce_sorted=False
        )
        out, _ = self.rnn(packed)
        return nn.utils.rnn.pad_packed_sequence(out, total_length=sequence.shape[0])[0]

    def _reads_gru_in_numpy(self, sequence: torch.Tensor) -> bool:
        return (
            isinstance(self.rnn, nn.GRU)
            and not self.training
            and not torch.is_grad_enabled()
            and not torch.jit.is_tracing()  # an export records torch's GRU
            and sequence.device.type == "cpu"
            and sequence.dtype == torch.float32
            and sequence.shape[1] <= NUMPY_GRU_MAX_BATCH
            and self.rnn.hidden_size <= NUMPY_GRU_MAX_HIDDEN
        )

    def output_lengths(self, widths: torch.Tensor) -> torch.Tensor:
        return torch.div(widths, self.config.stride, rounding_mode="floor")

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


#: Batches up to this size are read through the GRU by `small_batch_gru` on the CPU. Torch's
#: CPU GRU dispatches a dozen small operations a time step and direction, which for one image
#: take longer than the arithmetic; larger batches read faster in torch
#: (benchmarks/formula_speed.py).
NUMPY_GRU_MAX_BATCH = 4
#: ... and GRUs up to this many units: the large configuration's 256 units read faster in
#: torch even for one image (its matrix products are large enough for torch's threads).
NUMPY_GRU_MAX_HIDDEN = 128

#: NumPy's BLAS threads while `small_batch_gru` runs (None: the library's own). Its matrix
#: products are tiny; with a thread a core, OpenBLAS's threads and torch's OpenMP threads
#: (which wait spinning after the convolutions) take the cores from each other, and one
#: image's forward pass took three times as long on two cores (benchmarks/formula_speed.py).
BLAS_THREADS: int | None = 1
_blas_lock = threading.Lock()
_blas_controller: ThreadpoolController | None = None


@contextmanager
def _limited_blas() -> Iterator[None]:
    """`BLAS_THREADS` for NumPy's BLAS inside the block, then the number before. Readers in
    several threads take turns, so that no block restores a limit another one set."""
    global _blas_controller
    if BLAS_THREADS is None:
        yield
        return
    with _blas_lock:
        if _blas_controller is None:
            _blas_controller = ThreadpoolController()
        with _blas_controller.limit(limits=BLAS_THREADS, user_api="blas"):
            yield


def small_batch_gru(
    rnn: nn.GRU, sequence: np.ndarray, lengths: np.ndarray | None = None
) -> np.ndarray:
    """What a bidirectional `rnn` returns for a float32 (T, N, C) sequence in evaluation,
    computed in NumPy with both directions stepped together: one matrix product a step for
    the two, the input's part of every step in one product beforehand; NumPy's BLAS on
    `BLAS_THREADS` threads meanwhile. With `lengths` (each sequence's own steps), the
    backward direction starts at each sequence's end, as torch's packed sequences do; the
    steps beyond it are not meaningful."""
    with _limited_blas():
        return _numpy_gru(rnn, sequence, lengths)


def _numpy_gru(rnn: nn.GRU, sequence: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    size = rnn.hidden_size
    steps, batch = sequence.shape[:2]
    # the backward direction's steps in the order it reads them that lie past a sequence's end
    padding = None
    if lengths is not None:
        padding = (steps - 1 - np.arange(steps))[:, None] >= np.asarray(lengths)[None, :]
    x = sequence
    for layer in range(rnn.num_layers):
        weights = {
            name: [
                getattr(rnn, f"{name}_l{layer}{suffix}").detach().numpy()
                for suffix in ("", "_reverse")
            ]
            for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh")
        }
        from_input = x.reshape(steps * batch, -1) @ np.concatenate(weights["weight_ih"]).T
        from_input = (from_input + np.concatenate(weights["bias_ih"])).reshape(
            steps, batch, 2, 3 * size
        )
        # (T, 2, N, 3H), the backward direction in the order it reads
        from_input = np.stack([from_input[:, :, 0], from_input[::-1, :, 1]], axis=1)
        recurrent = np.stack([w.T for w in weights["weight_hh"]])  # (2, H, 3H)
        recurrent_bias = np.stack(weights["bias_hh"])[:, None]  # (2, 1, 3H)
        hidden = np.zeros((2, batch, size), np.float32)
        out = np.empty((steps, 2, batch, size), np.float32)
        two = 2 * size
        for step in range(steps):
            gates, own = from_input[step], hidden @ recurrent + recurrent_bias
            # reset and update gates: sigmoid(a) = (1 + tanh(a / 2)) / 2, which cannot overflow
            reset_update = 0.5 + 0.5 * np.tanh(0.5 * (gates[..., :two] + own[..., :two]))
            new = np.tanh(gates[..., two:] + reset_update[..., :size] * own[..., two:])
            hidden = new + reset_update[..., size:] * (hidden - new)
            if padding is not None:
                hidden[1, padding[step]] = 0.0  # not started yet: still the initial state
            out[step] = hidden
        x = np.concatenate([out[:, 0], out[::-1, 1]], axis=-1)
    return x
