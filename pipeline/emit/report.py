"""The build's report, of a model it trained or one it was given: report.json for programs, report.md
for people, and the pictures of a training run (fit.png and loss.png; confusion.png for a classifier)."""
from __future__ import annotations

import functools
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.int8 import quant
from pipeline.int8 import reference
from pipeline.model.data import Dataset, sample_rows
from pipeline.model.explain import FULL_PRINT_PARAMETERS
from pipeline.int8.tflite_model import TfliteModel

SAMPLE_ROWS = 200
"""Training rows listed in report.json with their float and int8 answers: the report's size
follows the model, not the data."""
PICTURE_ROWS = 2000
"""Training rows drawn in fit.png: enough to show the data's shape, few enough to see the curves."""


def _quiet_glyphs(draw: Callable[..., bytes]) -> Callable[..., bytes]:
    """Draws without matplotlib's `Glyph ... missing from font` warnings: a label in a script the
    default font lacks (CJK) is drawn as boxes, and a dozen warning lines would tell the user
    nothing about the model (report.md and report.json keep the labels as they are)."""
    @functools.wraps(draw)
    def quiet(*args, **kwargs) -> bytes:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font")
            warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support")
            return draw(*args, **kwargs)
    return quiet


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def sample(model, tfl: TfliteModel, dataset: Dataset, limit: int = SAMPLE_ROWS) -> dict[str, Any]:
    """Up to `limit` training rows, evenly spread over the file, with the float and int8 answers."""
    rows = sample_rows(len(dataset.x), limit)
    x = dataset.x[rows]
    o = tfl.output
    codes = quant.input_codes(tfl, x)
    int8 = quant.dequantize(reference.run(tfl, codes), float(o.scales[0]), int(o.zero_points[0]))
    float_y = np.asarray(model(x, training=False), dtype=np.float32)
    return {"shown": int(len(rows)), "of": int(len(dataset.x)),
            "points": [{"row": int(r) + 1, "x": _short(xr), "y": _short(yr), "float": _short(fr), "int8": _short(qr)}
                       for r, xr, yr, fr, qr in zip(rows, x, dataset.y[rows], float_y, int8)]}


def _short(values: np.ndarray) -> list[float]:
    """float32 values as their shortest decimals: 0.1 rather than 0.10000000149011612."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32)]


def _x_limits(report: dict[str, Any], xs: np.ndarray) -> tuple[float, float]:
    """The data and the calibrated range, and the lesson's question for the seed: nothing else."""
    lo, hi = report["quantization"]["input_range"]
    left, right = min(lo, float(xs.min())), max(hi, float(xs.max()))
    if report.get("lesson"):
        left, right = min(left, report["lesson"]["x"]), max(right, report["lesson"]["x"])
    margin = 0.04 * (right - left)
    return left - margin, right + margin


@_quiet_glyphs
def fit_png(report: dict[str, Any], curve: dict[str, np.ndarray], xs: np.ndarray, ys: np.ndarray) -> bytes:
    """Training data under the float and int8 curves, the calibrated range and the model's probes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curve:
        return _agreement_png(report, plt)
    lo, hi = report["quantization"]["input_range"]
    left, right = _x_limits(report, xs)
    rows = sample_rows(len(xs), PICTURE_ROWS)
    fig, (ax, err) = plt.subplots(2, 1, figsize=(7, 6.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    for axis in (ax, err):
        axis.axvspan(lo, hi, color="tab:green", alpha=0.08, lw=0, label=f"calibrated range [{lo:g}, {hi:g}]")
        axis.grid(alpha=0.3)
    size = 28 if len(rows) <= 20 else (10 if len(rows) <= 300 else 3)
    shown = f"training data ({len(rows)} of {len(xs)} rows)" if len(rows) < len(xs) else f"training data ({len(xs)} rows)"
    ax.scatter(xs[rows, 0], ys[rows, 0], s=size, color="0.35", alpha=0.45 if len(rows) > 20 else 0.8, lw=0,
               zorder=2, label=shown)
    window = (curve["x"] >= left) & (curve["x"] <= right)
    cx, cf, cq = curve["x"][window], curve["float"][window], curve["int8"][window]
    ax.plot(cx, cf, color="tab:blue", lw=1.8, zorder=4, label="Keras float")
    ax.step(cx, cq, where="mid", color="tab:orange", lw=1.2, zorder=5, label="int8 (as the device computes)")
    probes = [p for p in report["check"]["points"] if left <= p["x"][0] <= right]
    if probes:
        ax.scatter([p["x"][0] for p in probes], [p["int8"][0] for p in probes], marker="D", s=30, facecolors="none",
                   edgecolors="tab:red", lw=1.2, zorder=6, label="probes: int8 answers (report.md)")
    err.plot(cx, cq - cf, color="tab:orange", lw=1)
    inside = (cx >= lo) & (cx <= hi)
    limit = 1.6 * float(np.max(np.abs(cq - cf)[inside], initial=0.0)) or 1.0
    err.set_ylim(-limit, limit)
    err.set_ylabel("int8 - float")
    lesson = report.get("lesson")
    if lesson:
        for axis in (ax, err):
            axis.axvline(lesson["x"], color="tab:red", ls="--", lw=1)
        ax.text(0.98, 0.04, f"x = {lesson['x']:g}: float {lesson['float']:.3f}, int8 {lesson['int8']:.3f}",
                transform=ax.transAxes, ha="right", fontsize=9, color="tab:red")
    err.set_xlim(left, right)
    err.set_xlabel(report["data"]["names"][0] if report["data"].get("names") else "x")
    ax.set_ylabel(report["data"]["names"][-1] if report["data"].get("names") else "y")
    equation = report["learned"].get("equation")
    ax.set_title(f"{report['model']['name']}: {equation[0] if equation else 'float and int8 answers'}")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    data = _png(fig)
    plt.close(fig)
    return data


def _agreement_png(report: dict[str, Any], plt) -> bytes:
    """Several inputs: no curve to draw, so targets and int8 answers against the float answer, at a
    sample of the training rows, and int8 - float below (with the probes inside the calibrated range)."""
    sampled = report["data"].get("sample") or {"points": [], "shown": 0, "of": 0}
    points, probes = sampled["points"], report["check"]["points"]
    outputs = report["model"]["outputs"]
    labels = (report.get("classification") or {}).get("labels")
    fig, (ax, err) = plt.subplots(2, 1, figsize=(7, 6.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    for j in range(outputs):
        name = f" (class {labels[j]})" if labels else (f" (output {j + 1})" if outputs > 1 else "")
        f = np.array([p["float"][j] for p in points])
        q = np.array([p["int8"][j] for p in points])
        ax.scatter(f, [p["y"][j] for p in points], s=8, color="0.35", alpha=0.4, lw=0, zorder=2,
                   label=f"training targets: {sampled['shown']} of {sampled['of']} rows" if j == 0 else None)
        ax.scatter(f, q, s=8, color=f"C{(j + 1) % 10}", alpha=0.8, lw=0, zorder=3, label=f"int8 answer{name}")
        err.scatter(f, q - f, s=8, color=f"C{(j + 1) % 10}", alpha=0.8, lw=0, zorder=3)
    probes = [p for p in probes if not p["clipped"]]
    if probes:
        pf = [v for p in probes for v in p["float"]]
        err.scatter(pf, [v for p in probes for v in np.subtract(p["int8"], p["float"])], marker="D", s=30,
                    facecolors="none", edgecolors="tab:red", lw=1.2, zorder=4, label="probes (report.md)")
    low, high = ax.get_xlim()
    ax.plot([low, high], [low, high], color="tab:blue", lw=1, zorder=1, label="= Keras float")
    ax.set_xlim(low, high)
    ax.set_ylabel("target, int8 answer")
    err.axhline(0, color="tab:blue", lw=1, zorder=1)
    err.set_ylabel("int8 - float")
    err.set_xlabel("Keras float answer")
    for axis in (ax, err):
        axis.grid(alpha=0.3)
    inputs = report["model"]["inputs"]
    ax.set_title(f"{report['model']['name']}, {inputs} inputs: answers against the float model's")
    handles, labels = [], []
    for axis in (ax, err):
        h, l = axis.get_legend_handles_labels()
        handles, labels = handles + h, labels + l
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    data = _png(fig)
    plt.close(fig)
    return data


@_quiet_glyphs
def loss_png(losses: np.ndarray, title: str, loss: str = "MSE") -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(losses) + 1), losses, color="tab:blue")
    if np.all(losses > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"loss ({loss})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


@_quiet_glyphs
def confusion_png(c: dict[str, Any], title: str) -> bytes:
    """The device's confusion matrix on the hold-out rows: counts, and each row's share of its class."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(c["confusion"], dtype=np.int64)
    labels = c["labels"]
    k = len(labels)
    present = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, present, out=np.zeros(matrix.shape), where=present > 0)
    side = min(2.8 + 0.55 * k, 14)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:
        for (t, p), n in np.ndenumerate(matrix):
            ax.text(p, t, str(n), ha="center", va="center", fontsize=9 if k <= 10 else 6,
                    color="white" if share[t, p] > 0.6 else "black")
    ticks = np.arange(k)
    ax.set_xticks(ticks, labels if k <= 40 else [""] * k, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(ticks, labels if k <= 40 else [""] * k)
    ax.set_xlabel("predicted class (int8, as the device computes)")
    ax.set_ylabel("true class")
    a = c["accuracy"]
    ax.set_title(f"{title}\n{c['holdout_rows']} rows: accuracy float {100 * a['float']:.1f}%, device "
                 f"{100 * a['device']:.1f}%", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def classification_lines(c: dict[str, Any]) -> list[str]:
    """report.md's classifier section: accuracies, per-class figures, the confusion matrix, disagreements."""
    a, labels = c["accuracy"], c["labels"]
    n = c["holdout_rows"]
    balance = c["balance"]
    d = c["disagreements"]
    lines = ["## Classification (hold-out rows)", "",
             f"{len(labels)} classes, numbered in {c['label_order']} label order (the outputs' order). {n} rows held "
             "out of training, the same share of each class, chosen by the seed. The predicted class is the largest "
             f"output; among equal int8 codes the {c['tie_rule'].split(' among')[0]} wins.", "",
             "| model | accuracy |", "| --- | --- |",
             f"| Keras float | {100 * a['float']:.2f}% |",
             f"| int8 (TensorFlow Lite kernels) | {100 * a['int8']:.2f}% |",
             f"| int8 as the device computes it ({c['device_oracle']}) | {100 * a['device']:.2f}% |", "",
             f"Float and device disagree on {d['float_vs_device']} of {n} row(s)"
             + (f" (lines {', '.join(map(str, d['lines']))}{', ...' if d['float_vs_device'] > len(d['lines']) else ''})"
                if d["float_vs_device"] else "")
             + f"; TensorFlow Lite and the device on {d['int8_vs_device']}. Largest float-vs-device probability "
             f"difference: {c['max_lsb']:.3g} steps of 1/256.", "",
             "| class | training rows | hold-out rows | class weight | precision | recall | float precision | float recall |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    p = c["per_class"]
    for k, label in enumerate(labels):
        lines.append(f"| {label} | {balance['train'][k]} | {balance['holdout'][k]} | {balance['class_weights'][k]:.3g} | "
                     f"{_share(p['precision'][k])} | {_share(p['recall'][k])} | {_share(p['float_precision'][k])} | "
                     f"{_share(p['float_recall'][k])} |")
    lines += ["", "Confusion matrix (device; rows: true class, columns: predicted; confusion.png):", "",
              "| true \\ predicted | " + " | ".join(labels) + " |", "| --- " * (len(labels) + 1) + "|"]
    for label, row in zip(labels, c["confusion"]):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    for warning in c.get("warnings", []):
        lines += ["", f"Warning: {warning}"]
    return lines


def _training_batch(r: dict[str, Any]) -> str:
    batch, rows = r["training"].get("batch_rows"), r["data"]["rows"]
    return "full batch" if not batch or batch >= rows else f"mini-batches of {batch} of the {rows} rows"


def markdown(r: dict[str, Any]) -> str:
    """report.md: a trained model's data, training, what it learned and its check; a given model's
    interface and check."""
    return _trained_markdown(r) if "training" in r else _given_markdown(r)


def _given_markdown(r: dict[str, Any]) -> str:
    m, q, c = r["model"], r["quantization"], r["check"]
    lines = [f"# Build report: {m['name']}", "",
             f"Model: {m['source']}, {m['inputs']} input(s) (row-major), {m['outputs']} output(s)"
             + (f", a classifier of {len(m['labels'])} classes ({', '.join(m['labels'])})" if m["task"] == "classify" else "")
             + f"; engine {m['engine']}; not trained by this build.", "",
             "## Quantization", "",
             f"int8 input scale {q['input']['scale']:.6g} zero point {q['input']['zero_point']}, output scale "
             f"{q['output']['scale']:.6g} zero point {q['output']['zero_point']}; input range "
             f"[{q['input_range'][0]:g}, {q['input_range'][1]:g}].",
             _flatbuffer_line(m), "",
             "## Check", "",
             f"{c['oracle']} over {c['sweep_count']} input rows; integer reference: {c['reference']}; "
             + ("TFLM and the reference not both computed: not compared." if c["mismatches"] is None
                else f"{c['mismatches']} mismatches between them."), ""]
    if c["errors"] is None:
        lines.append("Float vs int8: not computed: no float model was given (--float-model).")
    else:
        lines += [f"Float vs int8 against {c['float_model']}"
                  + (f" on {r['data']['source']} and the sweep" if r["data"]["source"] else " on the sweep") + ":", "",
                  *_error_table([("", c["errors"])]), "",
                  f"Tolerance: {c['tolerance_lsb']:g} output steps: passed."]
    return "\n".join(lines + _footprint_section(r)) + "\n"


def _flatbuffer_line(m: dict[str, Any]) -> str:
    return (f"Flatbuffer {m['tflite_bytes']} bytes, SHA-256 `{m['sha256']}`; ops {', '.join(m['ops'])}; "
            f"tensor arena {m['arena_bytes']} B (TFLM measured {m['arena_measured_bytes']} B).")


def _error_table(rows: list[tuple[str, dict[str, float]]]) -> list[str]:
    """Float-vs-int8 figures as a table, a row per set of inputs (one unnamed set: no set column)."""
    named = any(label for label, _ in rows)
    head = ["set"] * named + ["MAE", "RMSE", "max abs", "max LSB", "L2 rel", "cosine"]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for label, e in rows:
        cells = [label] * named + [f"{e['mae']:.4g}", f"{e['rmse']:.4g}", f"{e['max_abs']:.4g}", f"{e['max_lsb']:.3g}",
                                   f"{e['l2_relative']:.3g}", f"{e['cosine']:.6f}"]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _footprint_section(r: dict[str, Any]) -> list[str]:
    if not r.get("footprint"):
        return []
    return ["", "## Footprint on the Cortex-M4 (QEMU mps2-an386, arm-none-eabi-gcc -Os)", "",
            *footprint_lines(r["footprint"]), "",
            "Engine + model only, without UART and startup code; instructions from `bench` under "
            "`-icount shift=0`, minus an engine that computes nothing (docs/qemu.md)."]


def _trained_markdown(r: dict[str, Any]) -> str:
    m, q, c = r["model"], r["quantization"], r["check"]
    sampled = r["data"].get("sample")
    lines = [f"# Build report: {m['name']}", "",
             f"Data: {r['data']['source']} ({r['data']['rows']} rows, {m['inputs']} input(s), {m['outputs']} output(s)).",
             *([f"Sample: {sampled['shown']} of {sampled['of']} rows shown (evenly spread over the data) in report.json's "
                "data.sample, with their float and int8 answers; fit.png draws "
                + (f"{min(PICTURE_ROWS, sampled['of'])} of the {sampled['of']} rows." if m["inputs"] == 1 else "this sample.")]
               if sampled else []),
             f"Training: {r['training']['trainer']}, {r['training']['epochs']} steps ({_training_batch(r)}), "
             f"{r['training']['optimizer']} lr {r['training']['lr']}, final loss {r['training']['final_loss']:.6g}.", "",
             "## What was learned", ""]
    learned = r["learned"]
    full = learned.get("parameters", 0) <= FULL_PRINT_PARAMETERS
    for k, layer in enumerate(learned["layers"], start=1):
        weights, biases = np.asarray(layer["weights"]), np.asarray(layer["biases"])
        if full:
            lines.append(f"- layer {k} ({layer['units']} unit(s), {layer['activation']}): weights {layer['weights']}, "
                         f"biases {layer['biases']}")
        else:
            lines.append(f"- layer {k}: {weights.shape[0]} -> {layer['units']}, {layer['activation']}, "
                         f"{weights.size + biases.size} parameters, weights in [{weights.min():.4g}, {weights.max():.4g}]")
    if not full:
        lines.append(f"- {learned['parameters']} parameters; every weight and bias in report.json (learned.layers)")
    for eq in learned.get("equation") or []:
        lines.append(f"- equation: `{eq}`")
    if learned.get("by_hand"):
        lines += ["", "By hand at x = 10:", "", "```", *learned["by_hand"], "```"]
    lines += ["", "## Quantization", "",
              f"int8 input scale {q['input']['scale']:.6g} zero point {q['input']['zero_point']}"
              + (f" on x - {q['input']['center']:g} (inputs centered: their range lies far from 0)"
                 if q["input"].get("center") else "")
              + f", output scale {q['output']['scale']:.6g} zero point {q['output']['zero_point']}; calibrated over "
              f"[{q['input_range'][0]:g}, {q['input_range'][1]:g}]; Dense weights {'per channel' if q['per_channel'] else 'per tensor'}.",
              _flatbuffer_line(m), "",
              "## Check: float vs int8", "",
              (f"TFLM vs integer reference: {c['oracle']}, {c['mismatches']} mismatches over {c['sweep_count']} inputs."
               if c["mismatches"] is not None else
               f"TFLM vs integer reference: not compared ({c['oracle']}) over {c['sweep_count']} inputs."), "",
              *_error_table([("calibrated range", c["errors"]),
                             ("all input codes" if m["inputs"] == 1 else "sweep", c["sweep_errors"])])]
    lines += ["", f"Tolerance: {c['tolerance_lsb']:g} output steps: passed.", "", "Probes:", "",
              "| x | float | int8 | |", "| --- | --- | --- | --- |"]
    for p in c["points"]:
        lines.append(f"| {', '.join(f'{v:g}' for v in p['x'])} | {', '.join(f'{v:.4f}' for v in p['float'])} | "
                     f"{', '.join(f'{v:.4f}' for v in p['int8'])} | {'clipped' if p['clipped'] else ''} |")
    if r.get("classification"):
        lines += ["", *classification_lines(r["classification"])]
    lines += _footprint_section(r)
    lines += ["", "## Time", ""] + [f"- {k}: {v:.2f} s" for k, v in r["timings"].items()]
    return "\n".join(lines) + "\n"


def assemble(*, facts, result, engine: str, tflite_bytes: int, plan: dict[str, Any] | None,
             source: str | None = None, data: str | None = None, training: Training | None = None,
             classification: dict[str, Any] | None = None) -> dict[str, Any]:
    """report.json's content: every stage's outcome, machine-readable. A trained model's data, training
    and what it learned (training); a given one's file (source) and the rows it was judged on (data);
    a classifier's hold-out figures."""
    t = training
    kind = ({"hidden": list(t.hidden), "activation": t.activation} if t is not None
            else {"task": facts.task, "labels": list(facts.labels)})
    report: dict[str, Any] = {
        "model": {"name": facts.name, **({"source": source} if source is not None else {}), "inputs": facts.inputs,
                  "outputs": facts.outputs, **kind, "engine": engine, "sha256": facts.sha256, "id": facts.id,
                  "tflite_bytes": tflite_bytes, "ops": list(facts.ops), "arena_bytes": facts.arena,
                  "arena_measured_bytes": facts.arena_measured, "aot_plan": plan},
        "data": {"source": data} if t is None else {"source": t.dataset.source, "rows": int(len(t.dataset.x)),
                                                     "names": list(t.dataset.names), "sample": t.rows},
    }
    if t is not None:
        c, run = t.config, t.trained
        report["training"] = {"trainer": c.trainer, "epochs": c.epochs, "lr": c.lr, "optimizer": c.optimizer,
                              "seed": c.seed, "batch_rows": min(c.batch_rows, int(len(t.dataset.x))),
                              "seconds": run.seconds, "final_loss": float(run.losses[-1]), "trajectory": run.trajectory}
        report["learned"] = t.explanation.as_dict()
    report["quantization"] = {"input_range": list(facts.input_range), "per_channel": facts.per_channel,
                              "input": {"scale": facts.input_scale, "zero_point": facts.input_zero_point,
                                        **({"center": facts.input_center} if facts.input_center else {})},
                              "output": {"scale": facts.output_scale, "zero_point": facts.output_zero_point}}
    report["check"] = result.as_dict()
    if t is not None:
        report["lesson"] = result.lesson
        report["timings"] = t.timings
    if classification is not None:
        report["classification"] = classification
    return report


@dataclass
class Training:
    """What a training run adds to the report: the data, the run, what the model learned."""

    dataset: Dataset
    config: Any
    trained: Any
    explanation: Any
    hidden: tuple[int, ...]
    activation: str
    timings: dict[str, float]
    rows: dict[str, Any] | None = None
    """report.json's data.sample: rows with their float and int8 answers (sample())."""


def footprint_lines(footprint: dict[str, Any] | None) -> list[str]:
    if not footprint:
        return []
    if "skipped" in footprint:
        return [f"footprint: not measured ({footprint['skipped']})"]
    def line(engine: str, f: dict[str, Any]) -> str:
        if "skipped" in f:
            return f"footprint {engine}: not measured ({f['skipped']})"
        text = (f"footprint {engine}: flash {f['flash_bytes']} B, RAM {f['ram_bytes']} B (data + bss), stack "
                f"{f['stack_bytes']} B, {f['instructions_per_inference']} instructions per inference")
        if engine == "aot" and f.get("instructions_per_mac") is not None:
            text += f" ({f['instructions_per_mac']:.2f} per MAC"
            tflm = footprint.get("tflm", {}).get("instructions_per_inference")  # absent when skipped
            if tflm and f["instructions_per_inference"]:
                ratio = tflm / f["instructions_per_inference"]
                text += (f", {ratio:.1f}x fewer than TFLM's {tflm}" if ratio >= 1
                         else f", {1 / ratio:.1f}x more than TFLM's {tflm}")
            text += ")"
        return text + (f", arena {f['arena_bytes']} B" if f.get("arena_bytes") else "")

    return [line(engine, f) for engine, f in footprint.items()]


def _json(value: Any, level: int = 0) -> str:
    """Indented objects; one line for each list of numbers, short list of lists, or object of
    numbers: a 16x16 layer's weights take 16 lines, not 290, a sampled row one line."""
    pad = " " * (level + 1)
    flat = isinstance(value, dict) and level > 0 and all(
        not isinstance(v, dict) and not (isinstance(v, list) and any(isinstance(w, (dict, list)) for w in v))
        for v in value.values())
    if isinstance(value, dict) and value and not flat:
        items = [f"{pad}{json.dumps(k)}: {_json(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        if all(isinstance(v, list) and not any(isinstance(w, (dict, list)) for w in v) for v in value) and len(value) <= 8:
            return json.dumps(value)
        return "[\n" + ",\n".join(pad + _json(v, level + 1) for v in value) + "\n" + " " * level + "]"
    return json.dumps(value)


def files(directory: Path, report: dict[str, Any], pictures: dict[str, bytes]) -> dict[Path, bytes]:
    """The report's files by path, for one atomic write with the firmware sources."""
    out = {directory / "report.json": (_json(report) + "\n").encode(),
           directory / "report.md": markdown(report).encode()}
    out.update({directory / name: data for name, data in pictures.items()})
    return out
