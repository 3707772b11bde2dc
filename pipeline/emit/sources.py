"""Firmware sources for the model: the flatbuffer for TFLM, the AOT engine's tables, the model
header, and model.json, all written from one ModelDescription."""
from __future__ import annotations

import json
from typing import Any

import math

from pipeline.emit import aot, tflm_ops
from pipeline.emit.aot import GENERATED
from pipeline.emit.c_text import c_comment, c_string
from pipeline.int8 import reference
from pipeline.int8.description import CLASSIFY, REGRESS, ModelDescription, encode_label
from pipeline.int8.tflite_model import TfliteModel

ARENA_MARGIN = 0.25
"""Headroom over the arena TFLM reported on the host (64-bit pointers, so already above the board's need)."""


def arena_bytes(measured: int) -> int:
    """The arena the firmware reserves: the host's measurement plus ARENA_MARGIN, rounded up to 16."""
    return -(-int(measured * (1 + ARENA_MARGIN)) // 16) * 16


HOLDOUT_ROWS = 200
"""At most this many hold-out rows go to model.json for verify: enough to show the accuracy, small to ship."""


def facts(tfl: TfliteModel, name: str, input_range: tuple[float, float], arena_measured: int,
          tolerance_lsb: float, task: str = REGRESS, labels: tuple[str, ...] = (), gate: str = "steps") -> ModelDescription:
    """The deployed model's description, read from the flatbuffer and the build's choices."""
    i, o = tfl.input, tfl.output
    return ModelDescription(
        inputs=width(i.shape), outputs=width(o.shape), input_scale=float(i.scales[0]),
        input_zero_point=int(i.zero_points[0]), output_scale=float(o.scales[0]), output_zero_point=int(o.zero_points[0]),
        input_range=(float(input_range[0]), float(input_range[1])), name=name, sha256=tfl.sha256, ops=tuple(tfl.ops),
        per_channel=any(t.per_channel for t in tfl.tensors if t.dtype == "INT8"),
        arena=arena_bytes(arena_measured), arena_measured=arena_measured, tolerance_lsb=tolerance_lsb,
        task=task, labels=tuple(labels), gate=gate, input_center=tfl.input_center)


def width(shape: tuple[int, ...]) -> int:
    """Values per row of a tensor whose first dimension is the batch: (1, 119, 6) holds 714, fed row-major."""
    return math.prod(shape[1:]) if len(shape) > 1 else 1


def _resolver_method(op: str) -> str:
    """FULLY_CONNECTED -> AddFullyConnected, as MicroMutableOpResolver names it."""
    method = tflm_ops.resolver_method(op)
    if method is None:
        raise tflm_ops.UnsupportedOpError(f"{op} has no resolver method in {tflm_ops.TREE}")
    return method


def _float(value: float) -> str:
    return f"{value!r}f" if "e" in repr(value) or "." in repr(value) else f"{value!r}.0f"


def model_info_h(f: ModelDescription) -> str:
    ops = " ".join(f"OP({_resolver_method(op)})" for op in f.ops)
    lo, hi = f.input_range
    return f"""/* {GENERATED} Model: {c_comment(f.name)}. */
#ifndef MODEL_INFO_H
#define MODEL_INFO_H

#define MODEL_NAME {c_string(f.name)}
#define MODEL_SHA256 {c_string(f.sha256)}
#define MODEL_ID {c_string(f.id)}
#define MODEL_INPUT_COUNT {f.inputs}
#define MODEL_OUTPUT_COUNT {f.outputs}
#define MODEL_INPUT_SCALE {_float(f.input_scale)}
#define MODEL_INPUT_ZERO_POINT {f.input_zero_point}
#define MODEL_OUTPUT_SCALE {_float(f.output_scale)}
#define MODEL_OUTPUT_ZERO_POINT {f.output_zero_point}
#define MODEL_INPUT_MIN {_float(float(lo))}
#define MODEL_INPUT_MAX {_float(float(hi))}
{_center_h(f)}/* Tensor arena: TFLM measured {f.arena_measured} B on the host, plus {int(ARENA_MARGIN * 100)}%, rounded to 16. */
#define MODEL_ARENA_MEASURED_BYTES {f.arena_measured}
#define MODEL_ARENA_BYTES {f.arena}
#define MODEL_OP_COUNT {len(f.ops)}
#define MODEL_TFLM_OPS(OP) {ops}
{_classes_h(f)}
#endif
"""


def _center_h(f: ModelDescription) -> str:
    """A centered model's center, which the device subtracts before quantizing; nothing without one
    (app.c then subtracts 0.0f), so an uncentered model's file is as it always was."""
    if not f.input_center:
        return ""
    return f"#define MODEL_INPUT_CENTER {_float(f.input_center)} /* quantize (x - center) / scale */\n"


def _classes_h(f: ModelDescription) -> str:
    """A classifier's labels, as the device sends them (encode_label: printable ASCII, one token)."""
    if f.task != CLASSIFY:
        return ""
    sent = [encode_label(label) for label in f.labels]
    entries = " ".join(f"LABEL({c_string(s)})" for s in sent)
    return (f"/* A classifier: value answers end with the top label; `labels` lists them. */\n"
            f"#define MODEL_CLASS_COUNT {len(sent)}\n"
            f"#define MODEL_LABEL_MAX_BYTES {max(map(len, sent))}\n"
            f"#define MODEL_LABELS_BYTES {sum(len(s) + 1 for s in sent)} /* each with the space before it */\n"
            f"#define MODEL_LABELS(LABEL) {entries}\n")


MODEL_DATA_H = f"""/* {GENERATED} */
#ifndef MODEL_DATA_H
#define MODEL_DATA_H

extern const unsigned char g_model[];
extern const unsigned int g_model_len;

#endif
"""


def model_data_cpp(tflite: bytes, f: ModelDescription) -> str:
    rows = [", ".join(f"0x{b:02x}" for b in tflite[i:i + 12]) for i in range(0, len(tflite), 12)]
    body = ",\n  ".join(rows)
    return f"""/* {GENERATED} Model: {c_comment(f.name)}, SHA-256 {c_comment(f.sha256)}. */
#include "model_data.h"

alignas(16) const unsigned char g_model[] = {{
  {body}
}};
const unsigned int g_model_len = {len(tflite)};
"""


def _json(value: Any, level: int = 0) -> str:
    """Indented where it helps a reader, one line per list: the 256-row sweep stays two lines."""
    if isinstance(value, dict) and (level == 0 or any(isinstance(v, (dict, list)) for v in value.values())):
        pad = " " * (level + 1)
        items = [f"{pad}{json.dumps(k)}: {_json(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
    return json.dumps(value)


def model_json(f: ModelDescription, sweep: dict[str, Any], probes: list[list[float]] | None = None,
               holdout: tuple[Any, Any] | None = None) -> str:
    """The model for host tools: its description, then `probes`, the float inputs the build printed,
    and `sweep`, the check's input codes (ALL_CODES for every code of one input, derived by the
    reader) with the Keras float outputs verify judges the device's values by; for a classifier,
    `holdout`: up to HOLDOUT_ROWS rows the training never saw, their inputs and true class indices."""
    body = {**f.to_json(), "probes": probes or [], "sweep": sweep}
    if holdout is not None:
        x, y = holdout
        rows = [[float(v) for v in row] for row in x][:HOLDOUT_ROWS]
        body["holdout"] = {"x": rows, "labels": [int(c) for c in y][:HOLDOUT_ROWS]}
    return _json(body) + "\n"


def sources(tflite: bytes, tfl: TfliteModel, f: ModelDescription, sweep: dict[str, Any],
            probes: list[list[float]] | None = None, holdout: tuple[Any, Any] | None = None,
            engine: str = "aot") -> dict[str, bytes]:
    """Every file of firmware/model/, by name. Raises UnsupportedModelError when AOT cannot compute
    the model and the engine is "aot"; for the TFLM engine, model_aot.h then stops an AOT build
    with the reason."""
    note = f" Model: {c_comment(f.name)}, SHA-256 {c_comment(f.sha256)}."
    try:
        refusal_text = reference.aot_refusal(tfl)
        if refusal_text:
            raise reference.UnsupportedModelError(refusal_text)
        aot_header = aot.header(tfl, note)
    except reference.UnsupportedModelError as refusal:
        if engine == "aot":
            raise
        aot_header = (f"/* {GENERATED}{note} */\n#define MODEL_AOT_UNSUPPORTED 1\n"
                      f"#error {c_string(f'the AOT engine cannot run this model: {refusal}; build the TFLM engine')}\n")
    files = {
        "model_data.h": MODEL_DATA_H,
        "model_data.cpp": model_data_cpp(tflite, f),
        "model_info.h": model_info_h(f),
        "model_aot.h": aot_header,
        "model.json": model_json(f, sweep, probes, holdout),
    }
    out = {name: text.encode() for name, text in files.items()}
    out["model.tflite"] = tflite
    return out
