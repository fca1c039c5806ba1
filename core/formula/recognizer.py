"""Reading a formula image: load a recogniser checkpoint safely, preprocess, run the CRNN,
decode, and return everything the GUI and the CLI show as one `Recognition`."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assets import ASSETS_DIR
from core import checkpoints
from core.devices import Device, choose
from core.formula import ctc, preprocess
from core.formula.alphabet import encode
from core.formula.decoding import (
    Constraint,
    Hypothesis,
    SymbolSpan,
    beam_search,
    greedy,
    with_spans,
)
from core.formula.grammar import Formula, GrammarError, parse
from core.formula.model_config import MODEL_KIND, CRNNConfig, column_span
from core.images import ImageProblem, read_image

if TYPE_CHECKING:  # torch is loaded with the first model, not with the window
    from core.formula.crnn import CRNN

SHIPPED_MODEL = ASSETS_DIR / "models" / "formula_crnn.pt"
#: The `large` configuration, trained on a GPU: reads binarised and filtered images better,
#: about ten times slower on a CPU (its model card, formula_crnn_large.md, gives both).
SHIPPED_LARGE_MODEL = ASSETS_DIR / "models" / "formula_crnn_large.pt"
#: The names `--model` and the GUI know the shipped models by.
SHIPPED_MODELS = {"small": SHIPPED_MODEL, "large": SHIPPED_LARGE_MODEL}
#: The beam width of `grammatical` readings.
GRAMMAR_BEAM = 10


#: A greedy reading less likely than this (its exact p(text | image)) is read again at other
#: widths (`Recognizer.look_again`).
LOOK_AGAIN_BELOW = 0.9
#: The widths a second look reads the image at, as shares of its own width.
LOOK_AGAIN_WIDTHS = (0.75, 0.87, 1.15, 1.3)
#: Where the widths of a second look disagree, the shipped small model asks the shipped
#: large one (its referee), whose log p(text | image) weighs this many times: as much as
#: all the widths together.
REFEREE_WEIGHT = len(LOOK_AGAIN_WIDTHS) + 1


@dataclass(frozen=True)
class SecondLook:
    """An unsure reading read again at other widths (`Recognizer.look_again`)."""

    widths: tuple[float, ...]  # shares of the image's width, 1.0 (the image as it is) first
    readings: tuple[str, ...]  # the greedy reading at each width
    first_log_prob: float  # the first greedy reading's exact log p(text | image)
    scores: dict[str, float]  # each reading's log p(text | image) summed over the widths
    text: str  # the likeliest reading (with the referee's word, when it was asked)
    # where the widths disagree and the model has a referee (`Recognizer.referee`): its
    # greedy reading of the image, each candidate's log p(text | image) under it, and the
    # referee's file name
    referee: str | None = None
    referee_scores: dict[str, float] = field(default_factory=dict)
    referee_model: str | None = None
    # where the widths disagree and the referee could not be loaded: why
    referee_problem: str | None = None
    grammar: bool = False  # whether each reading is the grammar-constrained search's

    @property
    def changed(self) -> bool:
        """Whether the second look reads otherwise than the input's greedy reading."""
        return self.text != self.readings[0]

    def total(self, text: str) -> float:
        """A candidate's score: its log p summed over the widths, plus `REFEREE_WEIGHT`
        times its log p under the referee when the referee was asked."""
        if self.referee is None:
            return self.scores[text]
        return self.scores[text] + REFEREE_WEIGHT * self.referee_scores[text]


@dataclass
class Recognition:
    """What the recogniser read in one image, and how."""

    text: str
    symbols: tuple[SymbolSpan, ...]
    log_probs: np.ndarray  # (T, 17) natural-log posteriors, blank first
    model_input: np.ndarray  # float32 (H, W): the image as the model saw it, ink 1
    image_size: tuple[int, int]  # (width, height) of the image given
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds
    greedy: Hypothesis | None = None
    beams: list[Hypothesis] = field(default_factory=list)  # beam search n-best
    constrained: list[Hypothesis] = field(default_factory=list)  # grammar-constrained
    stages: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (title, image)
    # the forward-backward alignment of the top reading (the grammar's first when asked),
    # None when it cannot be aligned (more symbols than time steps)
    alignment: ctc.Alignment | None = None
    # exact log p(top beam reading | image), and that reading's share of the n-best's mass
    sequence_log_prob: float | None = None
    nbest_share: float | None = None
    # the unsure greedy reading read again at other widths; `text` and `symbols` are then
    # the second look's reading, aligned on these posteriors
    second_look: SecondLook | None = None
    # the grammar-constrained search's unsure top reading read again at other widths, each
    # width's reading the grammar's too (with `beam_width` and `look_again`)
    grammar_look: SecondLook | None = None

    @property
    def confidences(self) -> tuple[float, ...]:
        return tuple(s.confidence for s in self.symbols)

    def align(self, text: str) -> ctc.Alignment:
        """The alignment of any `text` with these posteriors (a reading from the n-best, or
        one the user typed). Raises ValueError when it cannot fit the time steps."""
        return ctc.alignment(self.log_probs, text)

    @property
    def formula(self) -> Formula | None:
        """The reading parsed, or None when it is not a valid formula."""
        try:
            return parse(self.text)
        except GrammarError:
            return None

    def to_json(self) -> dict[str, Any]:
        formula = self.formula
        return {
            "text": self.text,
            "valid": formula is not None,
            "value": formula.value if formula else None,
            "is_equation": formula.is_equation if formula else None,
            "is_true": formula.is_true if formula else None,
            "symbols": [
                {
                    "symbol": s.symbol,
                    "start": s.start,
                    "end": s.end,
                    "confidence": round(s.confidence, 6),
                }
                for s in self.symbols
            ],
            "path_log_prob": self.greedy.log_prob if self.greedy else None,
            "second_look": _look_json(self.second_look),
            "grammar_second_look": _look_json(self.grammar_look),
            "beams": [{"text": h.text, "log_prob": h.log_prob} for h in self.beams],
            "constrained": [{"text": h.text, "log_prob": h.log_prob} for h in self.constrained],
            "image_size": list(self.image_size),
            "model_input_size": [int(self.model_input.shape[1]), int(self.model_input.shape[0])],
            "time_steps": int(self.log_probs.shape[0]),
            "log_probs": np.round(self.log_probs, 5).tolist(),
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _look_json(look: SecondLook | None) -> dict[str, Any] | None:
    """A second look for JSON, None where there was none."""
    if look is None:
        return None
    return {
        "widths": list(look.widths),
        "readings": list(look.readings),
        "log_probs": _finite(look.scores),
        "referee": look.referee,
        "referee_model": look.referee_model,
        "referee_problem": look.referee_problem,
        "grammar": look.grammar,
        "referee_log_probs": _finite(look.referee_scores),
        "text": look.text,
    }


def _finite(scores: dict[str, float]) -> dict[str, float | None]:
    """Scores for JSON: rounded, None for −inf."""
    return {t: round(v, 6) if math.isfinite(v) else None for t, v in scores.items()}


#: `Recognizer.forward` reads larger lists in width-sorted batches of this many inputs.
WIDTH_GROUP = 64


class Recognizer:
    """A loaded model on a device."""

    def __init__(
        self,
        model: CRNN,
        device: Device,
        meta: dict[str, Any] | None = None,
        path: Path | None = None,
        referee: Recognizer | Path | None = None,
    ) -> None:
        # channels-last convolutions read a batch of 256 about a fifth faster on a CPU
        import torch

        self.model = model.to(device.torch, memory_format=torch.channels_last).eval()
        self.device = device
        self.meta = meta or {}
        self.path = path
        self._referee = referee
        self.referee_problem: str | None = None  # why the referee could not be loaded

    @property
    def referee(self) -> Recognizer | None:
        """The model asked about the readings a second look's widths disagree on (the
        shipped large model, for the shipped small one), loaded when first asked; None
        when there is none, or when it cannot be loaded (`referee_problem` says why)."""
        if isinstance(self._referee, Path):
            try:
                self._referee = Recognizer.load(self._referee, self.device, referee=False)
            except checkpoints.CheckpointError as error:
                self._referee, self.referee_problem = None, str(error)
        return self._referee

    @property
    def config(self) -> CRNNConfig:
        return self.model.config

    @classmethod
    def load(
        cls, path: Path | str, device: Device | None = None, referee: bool = True
    ) -> Recognizer:
        """Load a recogniser checkpoint (best.pt of a run, or a shipped model). The shipped
        small model gets the shipped large one as its `referee` unless `referee` is False.

        Raises CheckpointError for files that are missing, damaged, hostile, of another
        kind or that do not fit the model they describe.
        """
        path = Path(path)
        judge = None
        if referee and path.resolve() == SHIPPED_MODEL.resolve():
            judge = SHIPPED_LARGE_MODEL
        record = checkpoints.load(path, MODEL_KIND)
        try:
            config = CRNNConfig.from_dict(record["model_config"])
            from core.formula.crnn import CRNN

            model = CRNN(config)
            model.load_state_dict(record["model"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise checkpoints.CheckpointError(
                f"{path} does not hold a usable formula model: {error}"
            ) from error
        meta = {k: record.get(k) for k in ("step", "metrics", "created", "labelscope")}
        return cls(model, device or choose("cpu"), meta, path, judge)

    @classmethod
    def shipped(cls, device: Device | None = None, size: str = "small") -> Recognizer:
        """A model that comes with Labelscope: "small" (the default) or "large"."""
        return cls.load(SHIPPED_MODELS[size], device)

    def prepare(
        self, image: np.ndarray, canvas: bool = False, steps: Iterable[str] | None = None
    ) -> np.ndarray:
        """The model's input for an RGB or gray image: float32 (H, W), ink 1, paper 0.
        `steps` names the preprocessing steps to apply (default: the model's own, and for a
        canvas drawing also the crop)."""
        return 1.0 - self.stages(image, canvas, steps)[-1][1]

    def stages(
        self, image: np.ndarray, canvas: bool = False, steps: Iterable[str] | None = None
    ) -> list[tuple[str, np.ndarray]]:
        """Each preprocessing step's title and result, ending with the normalised image
        (float32, ink 0, paper 1); the resize and normalisation are always applied."""
        if steps is None:
            steps = preprocess.CANVAS if canvas else preprocess.DEFAULT
        enabled = set(steps) | {"resize", "normalize"}
        return [
            (step.title, result)
            for step, result in preprocess.run(image, enabled, self.config.height)
        ]

    def forward(self, inputs: list[np.ndarray], alone: bool = True) -> list[np.ndarray]:
        """Log-posteriors (T_i, 17) for prepared inputs, in their order. Each input reads as
        it reads alone (`CRNN.forward`'s lengths), so the inputs go through in batches of
        `WIDTH_GROUP` of similar width, which pad less. `alone=False` reads them as one
        padded tensor, each narrower input's reading changed by its padding (the former
        way, a baseline for the benchmarks)."""
        import torch

        with torch.inference_mode():
            if not alone or len(inputs) <= WIDTH_GROUP:
                return self._padded_batch(inputs, alone)
            order = sorted(range(len(inputs)), key=lambda i: inputs[i].shape[1])
            results: list[np.ndarray] = [np.empty(0)] * len(inputs)
            for start in range(0, len(order), WIDTH_GROUP):
                group = order[start : start + WIDTH_GROUP]
                read = self._padded_batch([inputs[i] for i in group])
                for i, log_probs in zip(group, read, strict=True):
                    results[i] = log_probs
            return results

    def _padded_batch(self, inputs: list[np.ndarray], alone: bool = True) -> list[np.ndarray]:
        """`forward` of one batch padded with paper to its widest input."""
        import torch

        widths = [x.shape[1] for x in inputs]
        batch = torch.zeros(len(inputs), 1, self.config.height, max(widths))
        for i, x in enumerate(inputs):
            batch[i, 0, :, : x.shape[1]] = torch.from_numpy(x)
        lengths = self.model.output_lengths(torch.tensor(widths))
        with self.device.autocast():
            log_probs = self.model(batch.to(self.device.torch), lengths if alone else None)
        log_probs = log_probs.float().cpu().numpy()
        return [log_probs[: int(lengths[i]), i] for i in range(len(inputs))]

    def recognize(
        self,
        image: np.ndarray,
        canvas: bool = False,
        beam_width: int = 0,
        nbest: int = 5,
        steps: Iterable[str] | None = None,
        keep_stages: bool = False,
        grammar: Constraint | bool = True,
        align: bool = False,
        prefer_grammar: bool = False,
        look_again: bool = True,
    ) -> Recognition:
        """Read one image (RGB or gray uint8). `canvas` for mouse drawings: crops first;
        `steps` chooses the preprocessing (see `stages`), `keep_stages` keeps each step's
        image. With `beam_width`, also the beam search n-best and the n-best under
        `grammar` (the formula grammar, or a FormulaGrammar with a truth weight), the top
        reading's exact probability and share of the n-best; with `align`, the alignment of
        the top reading (the grammar's first with `prefer_grammar`), so a viewer only draws.
        With `look_again`, an unsure greedy reading is read again at other widths
        (`look_again`), and `text` and `symbols` are the second look's; so is the alignment
        when the second look changed the reading (unless the grammar's is preferred). With
        a `beam_width` too, an unsure top reading of the constrained search is read again
        the same way (`grammar_look`), and a preferred grammar's alignment is of its
        reading."""
        start = time.perf_counter()
        problem = shape_problem(image.shape[1], image.shape[0], self.config.height)
        if problem:
            raise ImageProblem("<image>", "wrong-shape", problem)
        stages = self.stages(image, canvas, steps)
        x = 1.0 - stages[-1][1]
        prepared = time.perf_counter()
        log_probs = self.forward([x])[0]
        forwarded = time.perf_counter()
        best = greedy(log_probs)
        decoded = time.perf_counter()
        look = None
        memo: dict[tuple[str, int], list[np.ndarray]] = {}  # shared with the grammar's look
        if look_again:
            look = self.look_again([image], [log_probs], [best], canvas, steps, memo=memo)[0]
        reading = _read_as(best, look, log_probs)
        done = time.perf_counter()
        result = Recognition(
            text=reading.text,
            symbols=reading.symbols,
            log_probs=log_probs,
            model_input=x,
            image_size=(int(image.shape[1]), int(image.shape[0])),
            greedy=best,
            stages=stages if keep_stages else [],
            timings={
                "preprocess": (prepared - start) * 1e3,
                "forward": (forwarded - prepared) * 1e3,
                "decode": (decoded - forwarded) * 1e3,
                **({"second_look": (done - decoded) * 1e3} if look else {}),
                "total": (done - start) * 1e3,
            },
            second_look=look,
        )
        if beam_width:
            result.beams = beam_search(log_probs, beam_width, nbest)
            result.constrained = beam_search(log_probs, beam_width, nbest, grammar=grammar)
            if look_again and result.constrained:
                result.grammar_look = self.look_again(
                    [image],
                    [log_probs],
                    [result.constrained[0]],
                    canvas,
                    steps,
                    grammar=grammar,
                    memo=memo,
                )[0]
            result.timings["beam"] = (time.perf_counter() - done) * 1e3
            top = result.beams[0] if result.beams else None
            if top is not None:
                total = np.logaddexp.reduce([h.log_prob for h in result.beams])
                result.nbest_share = float(np.exp(top.log_prob - total))
                try:
                    result.sequence_log_prob = ctc.log_prob(log_probs, top.text)
                except ValueError:
                    result.sequence_log_prob = None
        if align:
            chosen = (result.constrained if prefer_grammar else result.beams) or result.beams
            text = chosen[0].text if chosen else result.text
            if look is not None and look.changed and not (prefer_grammar and result.constrained):
                text = result.text  # the second look's reading, not the image's own top one
            grammar_look = result.grammar_look
            if prefer_grammar and grammar_look is not None and grammar_look.changed:
                text = grammar_look.text  # likewise the grammar's
            try:
                result.alignment = result.align(text)
            except ValueError:
                result.alignment = None
        return result

    def recognize_file(
        self,
        path: Path | str,
        grammar: bool = False,
        look_again: bool = True,
        steps: Iterable[str] | None = None,
    ) -> Recognition:
        """Read an image file; with `grammar`, the text and symbols are the `grammatical`
        reading's (read again at other widths where unsure, with the grammar, unless not
        `look_again`); `look_again` and `steps` as `recognize`."""
        start = time.perf_counter()
        image = read_image(path)
        decoded = time.perf_counter()
        try:
            result = self.recognize(image, steps=steps, look_again=look_again and not grammar)
        except ImageProblem as problem:  # refused for its shape: name the file
            raise ImageProblem(path, problem.kind, problem.detail) from None
        if grammar:
            best = grammatical(result.log_probs, spans=True)
            look = None
            if look_again:
                look = self.look_again(
                    [image], [result.log_probs], [best], steps=steps, grammar=True
                )[0]
            best = _read_as(best, look, result.log_probs)
            result.text, result.symbols, result.second_look = best.text, best.symbols, look
        result.timings = {
            "decode_image": (decoded - start) * 1e3,
            **result.timings,
            "total": (time.perf_counter() - start) * 1e3,
        }
        return result

    def read_batch(
        self,
        images: list[np.ndarray],
        grammar: bool = False,
        look_again: bool = True,
        steps: Iterable[str] | None = None,
        alone: bool = True,
    ) -> list[str]:
        """The texts of many images at once (evaluation, throughput): greedy, or with
        `grammar` the best reading of the grammar-constrained beam search (see
        `grammatical`); with `look_again` read again at other widths where unsure. `steps`
        as `stages`, `alone` as `forward`."""
        log_probs = self.forward([self.prepare(im, steps=steps) for im in images], alone)
        readings = [grammatical(lp) if grammar else greedy(lp) for lp in log_probs]
        if not look_again:
            return [h.text for h in readings]
        looks = self.look_again(images, log_probs, readings, steps=steps, grammar=grammar)
        return [look.text if look else h.text for h, look in zip(readings, looks, strict=True)]

    def look_again(
        self,
        images: list[np.ndarray],
        log_probs: list[np.ndarray],
        readings: list[Hypothesis],
        canvas: bool = False,
        steps: Iterable[str] | None = None,
        grammar: Constraint | bool = False,
        memo: dict[tuple[str, int], list[np.ndarray]] | None = None,
    ) -> list[SecondLook | None]:
        """A second look at each image whose reading (`readings`, greedy or with `grammar`
        the `grammatical` one, from `log_probs`) is unsure: less likely than
        `LOOK_AGAIN_BELOW` (its exact p(text | image), over every path). None for the others.

        The image is read again at `LOOK_AGAIN_WIDTHS` of its width, through the same
        preprocessing (`canvas`, `steps` as `stages`). Each width's reading, decoded as the
        first (greedy, or with `grammar` the grammar-constrained search's), is a candidate,
        scored by its exact log p(text | image) summed over all the widths (the widths'
        readings multiplied as independent views), and the likeliest wins. Where one width
        blurs a small `+` into a `*` or a thick `1` into a `7`, another often keeps them
        apart. An image whose bold strokes *Thin bold strokes* thins stays black and white
        at every width (`preprocess.stretch_widths`), so that each width is thinned as the
        image is; any other is resampled.

        Where the widths disagree and the model has a `referee`, the referee reads the image
        too: its reading, decoded the same way, is one more candidate, and each candidate's
        log p under it, `REFEREE_WEIGHT` times, joins the sum (`SecondLook.total`). A
        candidate that does not fit some width's time steps scores −inf; when none fits them
        all, the first reading stays. Two looks at the same images (greedy and grammar)
        share one `memo`, which keeps each image's posteriors at the other widths and the
        referee's, so that neither is computed twice."""

        def decode(log_probs: np.ndarray) -> Hypothesis:
            return grammatical(log_probs, grammar=grammar) if grammar else greedy(log_probs)

        threshold = math.log(LOOK_AGAIN_BELOW)
        sure = sequence_log_probs([(lp, h.text) for lp, h in zip(log_probs, readings, strict=True)])
        unsure = [i for i, log_prob in enumerate(sure) if log_prob < threshold]
        looks: list[SecondLook | None] = [None] * len(images)
        if not unsure:
            return looks
        memo = {} if memo is None else memo
        todo = [i for i in unsure if ("widths", i) not in memo]
        views = []
        for i in todo:
            height, width = images[i].shape[:2]
            least = math.ceil(MIN_MODEL_WIDTH * height / self.config.height)
            for stretched in preprocess.stretch_widths(
                images[i], LOOK_AGAIN_WIDTHS, min(width, least)
            ):
                views.append(self.prepare(stretched, canvas, steps))
        read = self.forward(views) if views else []
        other = len(LOOK_AGAIN_WIDTHS)
        for k, i in enumerate(todo):
            memo[("widths", i)] = read[k * other : (k + 1) * other]
        seen = []  # for each unsure image: its posteriors at every width, their readings
        for i in unsure:
            at_widths = [log_probs[i], *memo[("widths", i)]]
            texts = (readings[i].text, *(decode(lp).text for lp in at_widths[1:]))
            seen.append((at_widths, texts, list(dict.fromkeys(texts))))
        disputed = [k for k, (_, _, found) in enumerate(seen) if len(found) > 1]
        referee = self.referee if disputed else None
        judged: dict[int, np.ndarray] = {}  # the referee's posteriors of each disputed image
        if referee is not None:
            todo = [unsure[k] for k in disputed if ("referee", unsure[k]) not in memo]
            if todo:
                asked = [referee.prepare(images[i], canvas, steps) for i in todo]
                for i, lp in zip(todo, referee.forward(asked), strict=True):
                    memo[("referee", i)] = [lp]
            for k in disputed:
                judged[k] = lp = memo[("referee", unsure[k])][0]
                if (text := decode(lp).text) not in seen[k][2]:
                    seen[k][2].append(text)
        pairs = [(lp, text) for at_widths, _, found in seen for text in found for lp in at_widths]
        pairs += [(judged[k], text) for k in judged for text in seen[k][2]]
        each = iter(sequence_log_probs(pairs))  # every image's candidates in one batch
        summed = [
            {text: math.fsum(next(each) for _ in range(other + 1)) for text in found}
            for _, _, found in seen
        ]
        for k, (i, (_, texts, found)) in enumerate(zip(unsure, seen, strict=True)):
            look = SecondLook(
                (1.0, *LOOK_AGAIN_WIDTHS),
                texts,
                sure[i],
                summed[k],
                texts[0],
                grammar=bool(grammar),
            )
            if len(found) > 1 and referee is None and self.referee_problem:
                look = replace(look, referee_problem=self.referee_problem)
            if k in judged:
                said = {text: next(each) for text in found}
                name = referee.path.name if referee is not None and referee.path else None
                look = replace(
                    look, referee=decode(judged[k]).text, referee_scores=said, referee_model=name
                )
            best = max(found, key=look.total)
            looks[i] = replace(look, text=best if math.isfinite(look.total(best)) else texts[0])
        return looks

    def x_range(self, step: int, model_width: int, image_width: int) -> tuple[float, float]:
        """The x-range of the original image that time step `step` reads."""
        x0, x1 = column_span(step, self.config)
        scale = image_width / model_width
        return max(0.0, x0 * scale), min(float(image_width), x1 * scale)


def _read_as(first: Hypothesis, look: SecondLook | None, log_probs: np.ndarray) -> Hypothesis:
    """The reading to give: `first`, or where a second look read otherwise its reading,
    its symbols aligned on the image's own `log_probs`."""
    if look is None or not look.changed:
        return first
    return with_spans(Hypothesis(look.text, look.scores[look.text]), log_probs)


def sequence_log_probs(pairs: list[tuple[np.ndarray, str]]) -> list[float]:
    """The exact log p(text | x) of each (log-posteriors (T, C), text) pair, −inf where the
    text does not fit the time steps: torch's CTC loss over all the pairs in one batch
    (`ctc.log_prob` is the reference, one pair at a time)."""
    import torch

    if not pairs:
        return []
    steps = max(lp.shape[0] for lp, _ in pairs)
    batch = np.zeros((steps, len(pairs), pairs[0][0].shape[1]), np.float32)
    for n, (lp, _) in enumerate(pairs):
        batch[: lp.shape[0], n] = lp
    labels = [encode(text) for _, text in pairs]
    losses = torch.nn.functional.ctc_loss(
        torch.from_numpy(batch),
        torch.tensor([i for label in labels for i in label], dtype=torch.long),
        torch.tensor([lp.shape[0] for lp, _ in pairs], dtype=torch.long),
        torch.tensor([len(label) for label in labels], dtype=torch.long),
        reduction="none",
    )
    return [-v if math.isfinite(v) else -math.inf for v in losses.double().tolist()]


#: A formula image read at the model's height must be at least this many pixels wide, and
#: at most this many times wider than high (a long equation is about 15 times).
MIN_MODEL_WIDTH = 16
MAX_ASPECT = 60


def shape_problem(width: int, height: int, model_height: int) -> str | None:
    """Why an image of this size cannot be read as one line of formula, or None."""
    if min(width, height) < 8:
        return f"the image is {width} × {height} pixels: too small to hold a formula"
    if width * model_height / height < MIN_MODEL_WIDTH:
        return (
            f"the image is {width} × {height} pixels: far taller than wide, not one line of "
            "formula (crop it to the line)"
        )
    if width / height > MAX_ASPECT:
        return (
            f"the image is {width} × {height} pixels: more than {MAX_ASPECT} times wider "
            "than high, not one line of formula (crop it to the line)"
        )
    return None


def grammatical(
    log_probs: np.ndarray,
    beam_width: int = GRAMMAR_BEAM,
    spans: bool = False,
    grammar: Constraint | bool = True,
) -> Hypothesis:
    """The most probable well-formed formula the beam search finds in `log_probs` (with
    its symbols' spans when asked; under `grammar`, the formula grammar or one with a truth
    weight); the greedy reading where it finds none (what is written may not be a
    formula)."""
    found = beam_search(log_probs, beam_width, 1, grammar=grammar, spans=spans)
    return found[0] if found else greedy(log_probs)
