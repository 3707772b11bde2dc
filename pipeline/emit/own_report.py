"""report.json and report.md for a model this build did not train: the model, its int8 interface,
the check and the footprint."""
from __future__ import annotations

import json
from typing import Any

from pipeline.int8.description import ModelDescription


def assemble(facts: ModelDescription, result, engine: str, tflite_bytes: int, source: str,
             data: str | None) -> dict[str, Any]:
    return {
        "model": {"name": facts.name, "source": source, "inputs": facts.inputs, "outputs": facts.outputs,
                  "task": facts.task, "labels": list(facts.labels), "engine": engine, "sha256": facts.sha256,
                  "id": facts.id, "tflite_bytes": tflite_bytes, "ops": list(facts.ops), "arena_bytes": facts.arena,
                  "arena_measured_bytes": facts.arena_measured},
        "data": {"source": data},
        "quantization": {"input_range": list(facts.input_range), "per_channel": facts.per_channel,
                         "input": {"scale": facts.input_scale, "zero_point": facts.input_zero_point},
                         "output": {"scale": facts.output_scale, "zero_point": facts.output_zero_point}},
        "check": result.as_dict(),
    }


def markdown(r: dict[str, Any]) -> str:
    m, q, c = r["model"], r["quantization"], r["check"]
    lines = [f"# Build report: {m['name']}", "",
             f"Model: {m['source']}, {m['inputs']} input(s) (row-major), {m['outputs']} output(s)"
             + (f", a classifier of {len(m['labels'])} classes ({', '.join(m['labels'])})" if m["task"] == "classify" else "")
             + f"; engine {m['engine']}; not trained by this build.", "",
             "## Quantization", "",
             f"int8 input scale {q['input']['scale']:.6g} zero point {q['input']['zero_point']}, output scale "
             f"{q['output']['scale']:.6g} zero point {q['output']['zero_point']}; input range "
             f"[{q['input_range'][0]:g}, {q['input_range'][1]:g}].",
             f"Flatbuffer {m['tflite_bytes']} bytes, SHA-256 `{m['sha256']}`; ops {', '.join(m['ops'])}; "
             f"tensor arena {m['arena_bytes']} B (TFLM measured {m['arena_measured_bytes']} B).", "",
             "## Check", "",
             f"{c['oracle']} over {c['sweep_count']} input rows; integer reference: {c['reference']}; "
             + ("TFLM and the reference not both computed: not compared." if c["mismatches"] is None
                else f"{c['mismatches']} mismatches between them."), ""]
    if c["errors"] is None:
        lines.append("Float vs int8: not computed: no float model was given (--float-model).")
    else:
        e = c["errors"]
        lines += [f"Float vs int8 against {c['float_model']}"
                  + (f" on {r['data']['source']} and the sweep" if r["data"]["source"] else " on the sweep") + ":", "",
                  "| MAE | RMSE | max abs | max LSB | L2 rel | cosine |", "| --- | --- | --- | --- | --- | --- |",
                  f"| {e['mae']:.4g} | {e['rmse']:.4g} | {e['max_abs']:.4g} | {e['max_lsb']:.3g} | "
                  f"{e['l2_relative']:.3g} | {e['cosine']:.6f} |", "",
                  f"Tolerance: {c['tolerance_lsb']:g} output steps: passed."]
    footprint = r.get("footprint")
    if footprint:
        lines += ["", "## Footprint", "", "```", json.dumps(footprint, indent=1), "```"]
    return "\n".join(lines) + "\n"
