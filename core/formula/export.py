"""Exporting the recogniser to ONNX, with dynamic batch and width axes."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from core.jobs import JobError

if TYPE_CHECKING:
    from core.formula.recognizer import Recognizer


def export_onnx(recognizer: Recognizer, out: Path) -> Path:
    """Write `out`; raises JobError when the onnx package is missing."""
    try:
        import onnx  # noqa: F401 - torch's exporter needs it
    except ImportError:
        raise JobError(
            "ONNX export needs the onnx package: pip install 'labelscope[onnx]'"
        ) from None
    model = recognizer.model.to("cpu").eval()
    example = torch.zeros(1, 1, recognizer.config.height, 96)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The GRU warning is about passing initial states for varying batch sizes; the
        # model always starts from zeros, so any batch size is fine.
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            model,
            (example,),
            str(out),
            input_names=["images"],
            output_names=["log_probs"],
            dynamic_axes={"images": {0: "batch", 3: "width"}, "log_probs": {0: "time", 1: "batch"}},
            dynamo=False,
        )
    return out
