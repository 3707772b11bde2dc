"""The deployed model, described once: the build writes it (model.json, model_info.h), host
tools read it back, and the device's `id` line reports its interface part.

numpy only, so the device side (no TensorFlow) and the emitter share the same fields.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from pipeline.int8 import quant

REGRESS, CLASSIFY = "regress", "classify"
MAX_CLASSES = 64
MAX_LABEL_BYTES = 48
"""A label as sent (encoded) is at most this long: the device's answer buffer is sized by it."""

@dataclass(frozen=True)
class Interface:
    """What a client must know to talk to the model, and what the device reports in `id`:
    how many values go in and out, their int8 affine maps, and the calibrated input range."""

    inputs: int
    outputs: int
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    input_range: tuple[float, float]
    task: str = field(default=REGRESS, kw_only=True)
    """REGRESS (the outputs are values) or CLASSIFY (one probability per class, then its top label)."""
    input_center: float = field(default=0.0, kw_only=True)
    """The float32 value the device subtracts from every input before quantizing it (0: none)."""

    @property
    def classes(self) -> int:
        return self.outputs if self.task == CLASSIFY else 0

    def top(self, codes: Sequence[int]) -> int:
        """The predicted class of output codes: the highest code, the lowest index among equals,
        as the device picks it."""
        return int(np.argmax(np.asarray(codes, dtype=np.int32)))

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float inputs -> int8 codes, as the firmware quantizes them."""
        return quant.quantize(x, self.input_scale, self.input_zero_point, self.input_center)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """int8 output codes -> the float32 values the device prints."""
        return quant.dequantize(codes, self.output_scale, self.output_zero_point)

    def answer_text(self, codes: Sequence[int], clipped: bool = False, label: str | None = None) -> str:
        """The device's answer line for output codes (protocol v1): each value the exact product
        (code - zero point) * float32 scale (exact in a double, not rounded to float32), printed
        with 4 decimals and trailing zeros trimmed (from 1e9 on, 5 significant digits in exponent
        form); then ` clipped` when an input lay outside the calibrated range."""
        scale = float(np.float32(self.output_scale))
        texts = []
        for code in codes:
            value = (int(code) - self.output_zero_point) * scale
            if abs(value) >= 1e9:
                texts.append(f"{value:.4e}")
                continue
            text = f"{value:.4f}".rstrip("0").rstrip(".")
            texts.append("0" if text in ("-0", "") else text)
        if label is not None:
            texts.append(encode_label(label))
        return " ".join(texts) + (" clipped" if clipped else "")

    def input_values(self, codes: np.ndarray) -> np.ndarray:
        """int8 input codes -> the float inputs they stand for (the center added back, in float64)."""
        values = quant.dequantize(codes, self.input_scale, self.input_zero_point)
        return values.astype(np.float64) + self.input_center if self.input_center else values

    def inside(self, x: np.ndarray) -> np.ndarray:
        """Rows of float inputs inside the calibrated range, compared in float32 as the firmware does."""
        lo, hi = (np.float32(v) for v in self.input_range)
        x32 = np.asarray(x, dtype=np.float32).reshape(-1, self.inputs)
        return np.all((x32 >= lo) & (x32 <= hi), axis=1)

    def same_quantization(self, other: Interface) -> bool:
        """Same affine maps, center and range, allowing for the device printing scales and range as float32."""
        return (np.float32(self.input_center) == np.float32(other.input_center)
                and math.isclose(self.input_scale, other.input_scale, rel_tol=1e-5)
                and math.isclose(self.output_scale, other.output_scale, rel_tol=1e-5)
                and (self.input_zero_point, self.output_zero_point) == (other.input_zero_point, other.output_zero_point)
                and all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-4)
                        for a, b in zip(self.input_range, other.input_range)))

    def agrees(self, other: Interface) -> bool:
        """A client built for one can talk to the other: same shape and same quantization."""
        return (self.inputs, self.outputs) == (other.inputs, other.outputs) and self.same_quantization(other)


@dataclass(frozen=True)
class ModelDescription(Interface):
    """The interface plus what only the build knows: which flatbuffer, its ops, the TFLM arena
    it needs and the float tolerance verify judges the device by."""

    name: str
    sha256: str
    ops: tuple[str, ...]
    per_channel: bool
    arena: int
    """Bytes of tensor arena the TFLM engine reserves."""
    arena_measured: int
    """Bytes TFLM reported using on the host, from which `arena` was sized."""
    tolerance_lsb: float | None
    """None when no float model was given (an int8 .tflite deployed alone): nothing to judge by."""
    labels: tuple[str, ...] = field(default=(), kw_only=True)
    """A classifier's class names, in output order (empty for regression)."""
    gate: str = field(default="steps", kw_only=True)
    """What the build held the int8 model to: "steps" (|float - int8| <= tolerance_lsb), or "decisions"
    (a classifier: its top class; the steps are figures, not a limit)."""

    def __post_init__(self) -> None:
        if self.gate not in ("steps", "decisions"):
            raise ValueError(f"gate {self.gate!r} is neither 'steps' nor 'decisions'")
        if self.task not in (REGRESS, CLASSIFY):
            raise ValueError(f"task {self.task!r} is neither {REGRESS!r} nor {CLASSIFY!r}")
        if self.task == CLASSIFY:
            check_labels(self.labels, self.outputs)
        elif self.labels:
            raise ValueError("a regression model has no labels")

    def answer_text(self, codes: Sequence[int], clipped: bool = False, label: str | None = None) -> str:
        """The device's answer: for a classifier, the probabilities and then the top label."""
        if label is None and self.task == CLASSIFY:
            label = self.labels[self.top(codes)]
        return super().answer_text(codes, clipped, label)

    @property
    def id(self) -> str:
        """The model id the device reports: the first 12 hex digits of the flatbuffer's SHA-256."""
        return self.sha256[:12]

    def to_json(self) -> dict[str, Any]:
        """model.json's description fields, in the file's order."""
        return {
            "name": self.name, "sha256": self.sha256, "id": self.id, "inputs": self.inputs, "outputs": self.outputs,
            "input": {"scale": self.input_scale, "zero_point": self.input_zero_point},
            "output": {"scale": self.output_scale, "zero_point": self.output_zero_point},
            "input_range": list(self.input_range),
            **({"input_center": self.input_center} if self.input_center else {}), "ops": list(self.ops), "per_channel": self.per_channel,
            "arena_bytes": self.arena, "arena_measured_bytes": self.arena_measured,
            "tolerance": {"max_lsb": self.tolerance_lsb, **({"gate": self.gate} if self.gate != "steps" else {})},
            **({"task": self.task, "labels": list(self.labels)} if self.task == CLASSIFY else {}),
        }

    @classmethod
    def from_json(cls, meta: dict[str, Any]) -> ModelDescription:
        """Reads to_json's fields back; raises ValueError naming what is missing or inconsistent."""
        try:
            lo, hi = meta["input_range"]
            description = cls(
                inputs=int(meta["inputs"]), outputs=int(meta["outputs"]),
                input_scale=float(meta["input"]["scale"]), input_zero_point=int(meta["input"]["zero_point"]),
                output_scale=float(meta["output"]["scale"]), output_zero_point=int(meta["output"]["zero_point"]),
                input_range=(float(lo), float(hi)), input_center=float(meta.get("input_center", 0.0)),
                name=str(meta["name"]), sha256=str(meta["sha256"]),
                ops=tuple(str(op) for op in meta["ops"]), per_channel=bool(meta["per_channel"]),
                arena=int(meta["arena_bytes"]), arena_measured=int(meta["arena_measured_bytes"]),
                tolerance_lsb=None if meta["tolerance"]["max_lsb"] is None else float(meta["tolerance"]["max_lsb"]),
                task=str(meta.get("task", REGRESS)),
                labels=tuple(str(label) for label in meta.get("labels", ())),
                gate=str(meta["tolerance"].get("gate", "steps")))
        except KeyError as missing:
            raise ValueError(f"no {missing.args[0]!r}") from None
        except (TypeError, ValueError) as bad:
            raise ValueError(f"malformed description: {bad}") from None
        if meta.get("id", description.id) != description.id:
            raise ValueError(f"id {meta['id']} is not the first 12 digits of sha256 {description.sha256}")
        return description


def encode_label(label: str) -> str:
    """A label as the device sends it: one token of printable ASCII. UTF-8 bytes outside
    0x21..0x7e, and % itself, become %XX (so `red apple` is `red%20apple`, `café` `caf%C3%A9`)."""
    return "".join(chr(b) if 0x21 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in label.encode("utf-8"))


def decode_label(token: str) -> str:
    """encode_label's inverse; raises ValueError on a token it cannot have made."""
    out = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "%":
            digits = token[i + 1:i + 3]
            if len(digits) != 2 or any(c not in "0123456789ABCDEF" for c in digits):
                raise ValueError(f"bad escape in label {token!r}")
            out.append(int(digits, 16))
            i += 3
        else:
            out.append(ord(token[i]))
            i += 1
    return out.decode("utf-8")


LABEL_RULE = ("a label is its text without surrounding spaces and tabs: not empty, no comma (it separates "
              "--labels), no control character (tab, newline, DEL, C1), no whitespace but the space, UTF-8 text, at most "
              f"{MAX_LABEL_BYTES} bytes as sent, each once")
"""The one rule for a class label, whether it comes from --labels or a CSV's label column (the labels
of one can be given as the other) and whether it is read back from model.json."""


def label_text(given: str) -> str:
    """A label as written (a --labels item, a CSV cell): without the spaces and tabs around it."""
    return given.strip(" \t")


def label_problem(label: str) -> str | None:
    """Why `label` (already label_text) breaks LABEL_RULE, in a few words naming it; None when it keeps it.
    Spaces inside are kept (sent as %20), as is any printable Unicode (sent as its %XX UTF-8 bytes)."""
    if not label:
        return "empty class label"
    if label != label_text(label):
        return f"class label {label!r} has spaces or tabs around it"
    for ch in label:
        if "\ud800" <= ch <= "\udfff":
            return f"class label {label!r} is not UTF-8 text"
        if unicodedata.category(ch) == "Cc":
            return f"class label {label!r} holds a control character (U+{ord(ch):04X})"
        if ch.isspace() and ch != " ":
            return f"class label {label!r} holds U+{ord(ch):04X}, a line break or space other than ' '"
    if "," in label:
        return f"class label {label!r} holds a comma (commas separate the labels of --labels)"
    sent = encode_label(label)
    if len(sent) > MAX_LABEL_BYTES:
        return (f"class label {label!r} is {len(sent)} bytes as the device sends it ({sent[:20]}...); "
                f"at most {MAX_LABEL_BYTES}")
    return None


def check_labels(labels: Sequence[str], outputs: int) -> None:
    """One label per output, each keeping LABEL_RULE and given once, few enough for the device's buffers;
    raises ValueError naming the first label at fault (by its place, from 1)."""
    if not 2 <= outputs <= MAX_CLASSES:
        raise ValueError(f"{outputs} classes: a classifier has 2..{MAX_CLASSES}")
    if len(labels) != outputs:
        raise ValueError(f"{len(labels)} label(s) for the model's {outputs} classes")
    for place, label in enumerate(labels, start=1):
        problem = label_problem(label)
        if problem:
            raise ValueError(f"label {place}: {problem}")
    for place, label in enumerate(labels, start=1):
        if labels.count(label) > 1:
            raise ValueError(f"label {place}: class label {label!r} is given {labels.count(label)} times; "
                             "each class needs its own")
