"""The build's report: report.json for programs, report.md and two pictures for people."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np



def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def fit_png(report: dict[str, Any], curve: dict[str, np.ndarray], xs: np.ndarray, ys: np.ndarray) -> bytes:
    """Training points, float and int8 curves, the calibrated range and the lesson's x = 10."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curve:
        return _agreement_png(report, plt)
    lo, hi = report["quantization"]["input_range"]
    fig, (ax, err) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    for axis in (ax, err):
        axis.axvspan(lo, hi, color="tab:green", alpha=0.08, label=f"calibrated range [{lo:g}, {hi:g}]")
        axis.grid(alpha=0.3)
    ax.plot(curve["x"], curve["float"], color="tab:blue", lw=1.5, label="Keras float")
    ax.step(curve["x"], curve["int8"], where="mid", color="tab:orange", lw=1, label="int8 (as the device computes)")
    ax.scatter(xs[:, 0], ys[:, 0], color="black", zorder=3, label="training data")
    err.plot(curve["x"], curve["int8"] - curve["float"], color="tab:orange", lw=1)
    inside = (curve["x"] >= lo) & (curve["x"] <= hi)
    limit = 1.6 * float(np.max(np.abs(curve["int8"] - curve["float"])[inside], initial=0.0)) or 1.0
    err.set_ylim(-limit, limit)
    err.set_ylabel("int8 - float")
    lesson = report.get("lesson")
    if lesson:
        for axis in (ax, err):
            axis.axvline(lesson["x"], color="tab:red", ls="--", lw=1)
        ax.text(0.98, 0.04, f"x = {lesson['x']:g}: float {lesson['float']:.3f}, int8 {lesson['int8']:.3f}",
                transform=ax.transAxes, ha="right", fontsize=9, color="tab:red")
    err.set_xlabel("x")
    ax.set_ylabel("y")
    equation = report["learned"].get("equation")
    ax.set_title(f"{report['model']['name']}: {equation[0] if equation else 'float and int8 answers'}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def _agreement_png(report: dict[str, Any], plt) -> bytes:
    """Several inputs: no curve to draw, so int8 against float at the check's points."""
    points = report["check"]["points"]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for j in range(report["model"]["outputs"]):
        ax.scatter([p["float"][j] for p in points], [p["int8"][j] for p in points], s=12, label=f"output {j + 1}")
    low, high = ax.get_xlim()
    ax.plot([low, high], [low, high], color="gray", lw=0.8, ls="--", label="int8 = float")
    ax.set_xlabel("Keras float")
    ax.set_ylabel("int8 (as the device computes)")
    ax.set_title(f"{report['model']['name']}: int8 vs float at the training rows")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def loss_png(losses: np.ndarray, title: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(losses) + 1), losses, color="tab:blue")
    if np.all(losses > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def markdown(r: dict[str, Any]) -> str:
    m, q, c = r["model"], r["quantization"], r["check"]
    lines = [f"# Build report: {m['name']}", "",
             f"Data: {r['data']['source']} ({r['data']['rows']} rows, {m['inputs']} input(s), {m['outputs']} output(s)).",
             f"Training: {r['training']['trainer']}, {r['training']['epochs']} epochs, {r['training']['optimizer']} "
             f"lr {r['training']['lr']}, final loss {r['training']['final_loss']:.6g}.", "", "## What was learned", ""]
    for k, layer in enumerate(r["learned"]["layers"], start=1):
        lines.append(f"- layer {k} ({layer['units']} unit(s), {layer['activation']}): weights {layer['weights']}, biases {layer['biases']}")
    for eq in r["learned"].get("equation") or []:
        lines.append(f"- equation: `{eq}`")
    if r["learned"].get("by_hand"):
        lines += ["", "By hand at x = 10:", "", "```", *r["learned"]["by_hand"], "```"]
    lines += ["", "## Quantization", "",
              f"int8 input scale {q['input']['scale']:.6g} zero point {q['input']['zero_point']}, output scale "
              f"{q['output']['scale']:.6g} zero point {q['output']['zero_point']}; calibrated over "
              f"[{q['input_range'][0]:g}, {q['input_range'][1]:g}]; Dense weights {'per channel' if q['per_channel'] else 'per tensor'}.",
              f"Flatbuffer {m['tflite_bytes']} bytes, SHA-256 `{m['sha256']}`; ops {', '.join(m['ops'])}; "
              f"tensor arena {m['arena_bytes']} B (TFLM measured {m['arena_measured_bytes']} B).", "",
              "## Check: float vs int8", "",
              f"TFLM vs integer reference: {c['oracle']}, {c['mismatches']} mismatches over {c['sweep_count']} inputs.", "",
              "| set | MAE | RMSE | max abs | max LSB | L2 rel | cosine |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, e in (("calibrated range", c["errors"]), ("all input codes" if m["inputs"] == 1 else "sweep", c["sweep_errors"])):
        lines.append(f"| {label} | {e['mae']:.4g} | {e['rmse']:.4g} | {e['max_abs']:.4g} | {e['max_lsb']:.3g} | "
                     f"{e['l2_relative']:.3g} | {e['cosine']:.6f} |")
    lines += ["", f"Tolerance: {c['tolerance_lsb']:g} output steps: passed.", "", "| x | float | int8 | |", "| --- | --- | --- | --- |"]
    for p in c["points"]:
        lines.append(f"| {', '.join(f'{v:g}' for v in p['x'])} | {', '.join(f'{v:.4f}' for v in p['float'])} | "
                     f"{', '.join(f'{v:.4f}' for v in p['int8'])} | {'clipped' if p['clipped'] else ''} |")
    if r.get("footprint"):
        lines += ["", "## Footprint on the Cortex-M4 (QEMU mps2-an386, arm-none-eabi-gcc -Os)", "",
                  *footprint_lines(r["footprint"]), "",
                  "Engine + model only, without UART and startup code; instructions from `bench` under "
                  "`-icount shift=0`, minus an engine that computes nothing (docs/qemu.md)."]
    lines += ["", "## Time", ""] + [f"- {k}: {v:.2f} s" for k, v in r["timings"].items()]
    return "\n".join(lines) + "\n"


def assemble(*, facts, dataset, config, trained, explanation, result, engine: str, hidden: tuple[int, ...],
             activation: str, tflite_bytes: int, timings: dict[str, float]) -> dict[str, Any]:
    """report.json's content: every stage's outcome, machine-readable."""
    return {
        "model": {"name": facts.name, "inputs": facts.inputs, "outputs": facts.outputs, "hidden": list(hidden),
                  "activation": activation, "engine": engine, "sha256": facts.sha256, "id": facts.id,
                  "tflite_bytes": tflite_bytes, "ops": list(facts.ops), "arena_bytes": facts.arena,
                  "arena_measured_bytes": facts.arena_measured},
        "data": {"source": dataset.source, "rows": int(len(dataset.x)), "names": list(dataset.names)},
        "training": {"trainer": config.trainer, "epochs": config.epochs, "lr": config.lr, "optimizer": config.optimizer,
                     "seed": config.seed, "seconds": trained.seconds, "final_loss": float(trained.losses[-1]),
                     "trajectory": trained.trajectory},
        "learned": explanation.as_dict(),
        "quantization": {"input_range": list(facts.input_range), "per_channel": facts.per_channel,
                         "input": {"scale": facts.input_scale, "zero_point": facts.input_zero_point},
                         "output": {"scale": facts.output_scale, "zero_point": facts.output_zero_point}},
        "check": result.as_dict(),
        "lesson": result.lesson,
        "timings": timings,
    }


def footprint_lines(footprint: dict[str, Any] | None) -> list[str]:
    if not footprint:
        return []
    if "skipped" in footprint:
        return [f"footprint: not measured ({footprint['skipped']})"]
    return [f"footprint {engine}: flash {f['flash_bytes']} B, RAM {f['ram_bytes']} B (data + bss), stack "
            f"{f['stack_bytes']} B, {f['instructions_per_inference']} instructions per inference"
            + (f", arena {f['arena_bytes']} B" if f.get("arena_bytes") else "")
            for engine, f in footprint.items()]


def files(directory: Path, report: dict[str, Any], pictures: dict[str, bytes]) -> dict[Path, bytes]:
    """The report's files by path, for one atomic write with the firmware sources."""
    out = {directory / "report.json": (json.dumps(report, indent=1) + "\n").encode(),
           directory / "report.md": markdown(report).encode()}
    out.update({directory / name: data for name, data in pictures.items()})
    return out
