"""Weight averaging of recognisers fine-tuned from one another (a "model soup"): the
mean of their weights, which often reads more robustly than either model alone.

Only models of one lineage average well (one fine-tuned from the other, or both from a
common parent): two models trained from scratch sit in unrelated places of weight space.
The function checks that the files are recognisers of one configuration; whether they are
of one lineage is the user's knowledge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from core import checkpoints
from core.checkpoints import CheckpointError
from core.devices import choose
from core.formula.crnn import CRNN
from core.formula.evaluation import evaluate_batches
from core.formula.model_config import MODEL_KIND, CRNNConfig
from core.formula.train_config import TrainConfig
from core.formula.train_data import collate, validation_set


def average_models(paths: Sequence[Path | str], out: Path | str) -> Path:
    """Write the recogniser whose weights are the mean of the models at `paths` (same
    configuration, same parameters); integer buffers (batch-norm counters) are taken from
    the last model. Its scores are measured on the last model's own validation set, so the
    file says what it reads like. Written atomically; returns the path."""
    if len(paths) < 2:
        raise CheckpointError("Averaging needs at least two models.")
    records = [checkpoints.load(path, MODEL_KIND) for path in paths]
    first = records[0]
    for path, record in zip(paths[1:], records[1:], strict=True):
        if record.get("model_config") != first.get("model_config"):
            raise CheckpointError(
                f"{path} is a model of another configuration than {paths[0]}: "
                "only models of one configuration can be averaged."
            )
        if _shapes(record["model"]) != _shapes(first["model"]):
            raise CheckpointError(f"{path} does not hold the same parameters as {paths[0]}.")
    averaged = {}
    for name, tensor in records[-1]["model"].items():
        if tensor.is_floating_point():
            stack = torch.stack([record["model"][name].float() for record in records])
            averaged[name] = stack.mean(0).to(tensor.dtype)
        else:
            averaged[name] = tensor.clone()
    payload = {
        "model": averaged,
        "model_config": first["model_config"],
        "train_config": records[-1].get("train_config"),
        "averaged_from": ["/".join(Path(path).parts[-2:]) for path in paths],
        "metrics": _validation_scores(averaged, first["model_config"], records[-1]),
    }
    return checkpoints.save(out, payload, MODEL_KIND)


def _validation_scores(
    state: dict[str, torch.Tensor], model_config: dict, last: dict
) -> dict[str, float]:
    """Sequence accuracy and CER on the validation set the last model was trained with
    (none when its checkpoint does not say how it was trained)."""
    if not isinstance(last.get("train_config"), dict):
        return {}
    config = TrainConfig.from_dict(last["train_config"])
    model = CRNN(CRNNConfig.from_dict(model_config))
    model.load_state_dict(state)
    items = sorted(validation_set(config), key=lambda item: item[0].shape[1])
    batches = [collate(items[i : i + 256]) for i in range(0, len(items), 256)]
    return evaluate_batches(model, batches, choose("cpu"))


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in state.items()}
