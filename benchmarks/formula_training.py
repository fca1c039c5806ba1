"""Formula training throughput on this machine: what width-sorted batches, channels-last
convolutions and CPU bfloat16 each give, against the plain baseline, in one run.

    python -m benchmarks.formula_training [--batches 8] [--device cpu] [--size small]

The same drawn images (mixed styles and formulas, training augmentation) are trained on
in every configuration, from the same initial weights: the baseline cuts batches in stream
order, in float32, with contiguous tensors, as the trainer did before; the others switch
one thing at a time and then all together, as `core.formula.training` trains now. The
drawing itself (one process, what one data worker gives) is timed too, since it shares the
cores with the model.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time

import torch

from benchmarks.harness import machine
from core.devices import choose
from core.formula.crnn import CRNN
from core.formula.model_config import CRNNConfig
from core.formula.train_data import SyntheticStream, TrainTransform, WidthBuckets, collate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8, help="batches of 64 (one pool)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="small", choices=("small", "large"))
    options = parser.parse_args()
    device = choose(options.device)
    size = 64

    config = CRNNConfig.preset(options.size)
    stream = SyntheticStream(seed=0, transform=TrainTransform(config.height, 1.0, 0))
    drawn = iter(stream)
    start = time.perf_counter()
    items = [next(drawn) for _ in range(size * options.batches)]
    drawing = len(items) / (time.perf_counter() - start)
    plain = [collate(items[i : i + size]) for i in range(0, len(items), size)]
    pool = iter(WidthBuckets(items, size, options.batches, seed=0))
    sorted_batches = [next(pool) for _ in range(options.batches)]
    pixels = [sum(b["images"].numel() for b in batches) for batches in (plain, sorted_batches)]
    padded = pixels[0] / pixels[1]

    torch.manual_seed(0)
    initial = CRNN(config)
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)

    def throughput(batches: list[dict], channels_last: bool, bf16: bool) -> float:
        model = copy.deepcopy(initial).to(device.torch)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        form = torch.channels_last if channels_last else torch.contiguous_format
        seen, elapsed = 0, 0.0
        for round_ in range(2):  # the first round warms up
            for batch in batches:
                began = time.perf_counter()
                images = batch["images"].to(device.torch, memory_format=form)
                # float32 where bf16 is off, on a GPU too (whose autocast is otherwise on)
                with device.autocast(cpu_bf16=True) if bf16 else contextlib.nullcontext():
                    log_probs = model(images)
                loss = ctc(
                    log_probs.float(),
                    batch["targets"],
                    model.output_lengths(batch["widths"]),
                    batch["target_lengths"],
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if device.kind == "cuda":
                    torch.cuda.synchronize()
                if round_:
                    elapsed += time.perf_counter() - began
                    seen += len(batch["texts"])
        return seen / elapsed

    rows = [
        ("stream order, float32, contiguous (baseline)", plain, False, False),
        ("width-sorted pools", sorted_batches, False, False),
        ("channels-last", plain, True, False),
        ("bfloat16 autocast", plain, False, True),
        ("all three (the trainer now)", sorted_batches, True, True),
    ]
    print(f"{time.strftime('%Y-%m-%d')} · {machine()} · torch threads {torch.get_num_threads()}")
    print(f"Model: {options.size} ({initial.parameter_count():,} parameters), on {device}.\n")
    print(
        f"{len(items)} images, batches of {size}; stream-order batches hold {padded:.2f}× the "
        "pixels of width-sorted ones. bfloat16 autocast runs on a GPU, and on a CPU only "
        "where it computes it natively "
        f"({'yes' if isinstance(device.autocast(cpu_bf16=True), torch.autocast) else 'no'} "
        "here).\n"
    )
    print("| model step (forward, CTC, backward, AdamW) | images/s | × baseline |")
    print("| --- | ---: | ---: |")
    base = None
    for name, batches, channels_last, bf16 in rows:
        rate = throughput(batches, channels_last, bf16)
        base = base or rate
        print(f"| {name} | {rate:.0f} | {rate / base:.2f} |")
    print(f"\nDrawing and augmenting in one process: {drawing:.0f} images/s.")


if __name__ == "__main__":
    main()
