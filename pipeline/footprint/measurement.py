"""What the inference part of the firmware costs on the Cortex-M4: flash, RAM, stack and
executed instructions per inference, per engine, measured on the QEMU build (the Nano 33
BLE's CPU flags and compiler, arm-none-eabi-gcc -Os with --gc-sections).

    python -m pipeline.footprint [--model-dir DIR ...] [--engine aot|tflm|both] [--tflm-root DIR] [--json]

prints a table (--json: the figures as JSON instead); from Python, measure(model_dir)
returns a dict keyed by engine, one entry for each engine asked for (default both): its
figures, or {"skipped": why} where it cannot run the model (the AOT engine on an op it does
not compute; TFLM without a tree):

    {"aot": {"flash_bytes": 149, "ram_bytes": 4, "stack_bytes": 16,
             "instructions_per_inference": 19, "instructions_per_bench_iteration": 31,
             "macs": 1, "instructions_per_mac": 19.0, ...},
     "tflm": {"skipped": "no TFLM library tree (--tflm-root, or TFLM_ROOT, unset; ...)"}}

How each figure is obtained, and why that way:

flash_bytes, ram_bytes -- the engine and model objects' own sections, as the linker kept
  them. The device image (tinyml_qemu: core + AOT engine + QEMU platform) is linked with
  -ffunction-sections -fdata-sections --gc-sections and a linker map. Every input section
  of the map that landed in the image is attributed to its object file; the inference
  part is the engine's objects (engines/engine_aot.c with the model's tables; for TFLM, every
  object of the TFLM library and engine) plus the library members (libgcc, newlib) that
  only they pulled in. flash = .text + .rodata + .data (its initial values are stored in
  flash); RAM = .data + .bss (static RAM; the stack is reported apart). This counts
  exactly the bytes that ship, after dead-code removal, with no guessing about what the
  UART, start-up or protocol code would have cost: they are simply other objects. A
  library member shared with the rest of the firmware (memcpy, float helpers) is
  attributed to whoever the linker says pulled it first; as a cross-check, image_delta
  gives the whole-image difference between the device with this engine and the same
  device with an engine that computes nothing (tinyml_qemu_null), which counts shared
  code only once and excludes the empty engine's own few bytes.

stack_bytes -- high-water mark of engine_invoke, measured by painting: the measurement
  image (tinyml_qemu_measure) fills the free stack below the caller's stack pointer with
  a pattern, calls engine_invoke, and finds the deepest word that changed; the worst case
  over every int8 input code (every 16th for a model of more than 64 inputs) is kept
  (stack_init_bytes: the same for engine_init). This
  is what the call really used on the Cortex-M4, including anything the compiler inlined
  or spilled, which static per-function figures (-fstack-usage) would have to add up.

macs, instructions_per_mac -- the model's multiply-accumulates per inference, counted for
  every op as the field counts them (pipeline.int8.ops: convolutions and dense layers one per
  weight applied, pooling one per window element, ADD and MUL one per output value), and
  instructions_per_inference over them (None for a model without any).

instructions_per_inference -- deterministic, from the protocol's own `bench N` command on
  the device image run with `qemu -icount shift=0`. In that mode QEMU's virtual clock
  advances exactly 1 ns per executed guest instruction, so the `us=T` that bench reports
  (timed with the CMSDK timer) is T*1000 instructions. Two runs, N1 = 1 and N2 = 1 + n
  inferences, cancel everything outside the loop (command parsing, the clock reads): per
  iteration = (T2 - T1) * 1000 / n. n comes from the first run: as many iterations as fit
  BENCH_BUDGET instructions, at most BENCH_MAX (bench_iterations says how many). Each
  reading truncates to a whole microsecond at a phase the serial link sets (when the
  command arrived), so the figure is within 2000 / n instructions: exact, and the same every
  run, for a small model (0.02 over 100,000 iterations); within 100 of 10 million for a
  keyword spotter (20 iterations, seconds of QEMU). The loop's own cost (counter, call,
  return-value check; instructions_loop_overhead) is measured the same way on
  tinyml_qemu_null and subtracted: what remains is what a call to the engine costs beyond a
  call to an engine that does nothing. instructions_per_bench_iteration keeps the loop in.
  Checked: the empty loop measures 11, exactly the instructions on its path in the
  disassembly (a conditional instruction or IT counts one, executed or not). Bench feeds
  x = 0; the AOT engine's FULLY_CONNECTED has no branch on the input (its LOGISTIC, TANH and
  SOFTMAX steps do).

The TFLM engine is measured the same way when a TFLM library tree is given (tflm_root or
$TFLM_ROOT; see firmware/tflm.cmake; the library compiles once per tree, a few minutes on
two cores, in build/tflm/, and each model's images link it); otherwise its entry says it
was skipped and the comparison uses
TFLM_REFERENCE: the figures this module measured for the TFLM engine built from the pinned
Chirale 2.0.0 tree (TFLM with CMSIS-NN), on QEMU mps2-an386 with -icount, arm-none-eabi-gcc
12 -Os: 592 instructions per inference for the single neuron, 1,120 for the two-layer
model, 3,877 for the 1-16-16-1 relu network; 40,619 B flash and 764 B stack for the engine
and library; tensor arenas of 516, 660 and 820 B.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.device import deployed
from pipeline.device.serial_client import Device, DeviceError
from pipeline.emulation import emulate, qemu
from pipeline import cli
from pipeline.errors import BadInput, PipelineError
from pipeline.int8 import ops, reference, tflite_model

BENCH_BUDGET = 200_000_000
"""Instructions the timed run of `bench` spans at most: about a second or two of QEMU."""
BENCH_MAX = 100_000
QEMU_MIN_SPEED = 20e6
"""Guest instructions a second QEMU runs at the least on these machines (they measure 100-400 million):
the answer timeouts are set from it."""
ENGINE_CHOICES = ("aot", "tflm", "both")
RAM_BASE = 0x20000000

# Measured on QEMU mps2-an386 -icount with the Chirale 2.0.0 tree (TFLM, CMSIS-NN),
# arm-none-eabi-gcc 12 -Os; see the module docstring.
TFLM_REFERENCE_SOURCE = "Chirale 2.0.0 TFLM measured on QEMU mps2-an386 -icount"
TFLM_REFERENCE_INSTRUCTIONS = {"neuron": 592, "two-layer": 1120, "mlp-16x16-relu": 3877}
TFLM_REFERENCE_ARENA_BYTES = {"neuron": 516, "two-layer": 660, "mlp-16x16-relu": 820}
TFLM_REFERENCE_FLASH_BYTES = 40619
TFLM_REFERENCE_STACK_BYTES = 764
TARGETS = {"flash_bytes": 1024, "ram_bytes": 64, "instructions_ratio": 10.0}


class FootprintError(PipelineError, RuntimeError):
    """A measurement could not be made; str() is one line."""


class NoEngineError(BadInput, ValueError):
    """The engine asked for cannot run the model, or no engine can: the arguments must change."""


# ---- linker map --------------------------------------------------------------------------


@dataclass
class LinkMap:
    """What a GNU ld map says about one image."""

    output: dict[str, tuple[int, int]] = field(default_factory=dict)  # section -> (address, size)
    # object file -> kind (text, rodata, data, bss) -> bytes, for sections in the image
    objects: dict[str, dict[str, int]] = field(default_factory=dict)
    pulled_by: dict[str, str] = field(default_factory=dict)  # archive member -> who referenced it

    def image(self) -> dict[str, int]:
        """Whole-image flash and static RAM (the reserved stack apart)."""
        flash = ram = 0
        for name, (address, size) in self.output.items():
            if name == ".stack":
                continue
            if name in (".data", ".igot.plt"):
                flash += size
                ram += size
            elif address >= RAM_BASE:
                ram += size
            else:
                flash += size
        return {"flash_bytes": flash, "ram_bytes": ram,
                "stack_reserved_bytes": self.output.get(".stack", (0, 0))[1]}

    def attribute(self, is_ours: Callable[[str], bool]) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
        """Sections of the objects is_ours accepts, and of the library members only they
        pulled in (transitively): ({object: sizes}, {member: sizes})."""
        ours = {name: sizes for name, sizes in self.objects.items() if is_ours(name)}
        members: dict[str, dict[str, int]] = {}
        changed = True
        while changed:
            changed = False
            for member, referrer in self.pulled_by.items():
                if member not in members and member not in ours and (referrer in ours or referrer in members):
                    members[member] = self.objects.get(member, {})
                    changed = True
        return ours, members


_NOT_LOADED = (".debug", ".comment", ".ARM.attributes", ".stab", ".gnu.", ".note")
_OUT_ONE = re.compile(r"^(\.\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)")
_OUT_NAME = re.compile(r"^(\.\S+)\s*$")
_IN_ONE = re.compile(r"^ (\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*?)\s*$")
_IN_NAME = re.compile(r"^ (\S+)\s*$")
_CONT = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)(?:\s+(\S.*?))?\s*$")


def _kind(section: str) -> str | None:
    if section.startswith((".text", ".ARM.exidx", ".ARM.extab", ".init_array", ".fini_array",
                           ".preinit_array", ".glue", ".vfp11", ".v4_bx", ".iplt")):
        return "text"
    if section.startswith(".rodata"):
        return "rodata"
    if section.startswith(".data"):
        return "data"
    if section.startswith((".bss", "COMMON")):
        return "bss"
    return None


def parse_map(text: str) -> LinkMap:
    """Reads the parts of a GNU ld map (-Wl,-Map) this module needs."""
    result = LinkMap()
    lines = text.splitlines()
    try:
        archive_at = next(i for i, line in enumerate(lines)
                          if line.startswith("Archive member included to satisfy reference"))
    except StopIteration:
        archive_at = None
    if archive_at is not None:
        member = None
        for line in lines[archive_at + 1:]:
            if line and not line[0].isspace():
                if not line.startswith("/") and "(" not in line:
                    break  # the next part of the map
                member = line.strip()
            elif line.strip() and member is not None:
                referrer = re.sub(r"\s+\([^()]*\)\s*$", "", line.strip())
                result.pulled_by[member] = referrer
                member = None
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Linker script and memory map"))
    except StopIteration as error:
        raise FootprintError("not a GNU ld map: no 'Linker script and memory map' part") from error

    current: str | None = None  # output section
    pending_out: str | None = None
    pending_in: str | None = None
    for line in lines[start + 1:]:
        if pending_out is not None:
            match = _CONT.match(line)
            if match:
                result.output[pending_out] = (int(match[1], 16), int(match[2], 16))
            current, pending_out = pending_out, None
            continue
        if pending_in is not None:
            match = _CONT.match(line)
            pending, pending_in = pending_in, None
            if match and match[3]:
                _add(result, current, pending, int(match[2], 16), match[3])
            continue
        if line.startswith("."):
            match = _OUT_ONE.match(line)
            if match:
                current = match[1]
                result.output[current] = (int(match[2], 16), int(match[3], 16))
            elif _OUT_NAME.match(line):
                pending_out = line.strip()
            continue
        if line.startswith(" ") and not line.startswith("  "):
            match = _IN_ONE.match(line)
            if match and not match[1].startswith("*"):
                _add(result, current, match[1], int(match[3], 16), match[4])
            elif _IN_NAME.match(line) and not line.strip().startswith("*"):
                pending_in = line.strip()
    result.output = {name: v for name, v in result.output.items() if not name.startswith(_NOT_LOADED)}
    return result


def _add(result: LinkMap, output: str | None, section: str, size: int, owner: str) -> None:
    if output is None or output.startswith(_NOT_LOADED) or output == ".stack":
        return
    kind = _kind(section)
    if kind is None or owner == "linker stubs":
        return
    sizes = result.objects.setdefault(owner, {"text": 0, "rodata": 0, "data": 0, "bss": 0})
    sizes[kind] += size


def _sum(parts: dict[str, dict[str, int]]) -> dict[str, int]:
    total = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for sizes in parts.values():
        for kind, size in sizes.items():
            total[kind] += size
    return total


def _short(path: str) -> str:
    """engine_aot.c, or libgcc.a(_arm_muldf3.o)."""
    match = re.match(r"^.*/([^/()]+\.a)\((.+)\)$", path)
    if match:
        return f"{match[1]}({match[2]})"
    return re.sub(r"\.(obj|o)$", "", os.path.basename(path))


# ---- engines ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    name: str
    device: str  # image answering protocol v1
    measure: str  # stack measurement image
    is_ours: Callable[[str], bool]


def _aot_object(path: str) -> bool:
    return os.path.basename(path) in ("engine_aot.c.obj", "engine_aot.c.o")


def _tflm_object(path: str) -> bool:
    """Objects of firmware/tflm.cmake's tflm_lib and tflm_engine, loose or as archive members."""
    return any(mark in path for mark in ("/tflm_lib.dir/", "/tflm_engine.dir/", "libtflm_lib.a(",
                                         "libtflm_engine.a("))


ENGINES = {
    "aot": Engine("aot", "tinyml_qemu", "tinyml_qemu_measure", _aot_object),
    "tflm": Engine("tflm", "tinyml_qemu_tflm", "tinyml_qemu_tflm_measure", _tflm_object),
}


# ---- measurements ---------------------------------------------------------------------------


def _model(model_dir: Path, tflm: bool = False) -> deployed.DeployedModel:
    """The model the images are built from, as its model.json describes it. A folder without one
    (or with a malformed one) is bad input, exit 2, as it is to predict and verify; tflm: the TFLM
    engine will be measured, so its flatbuffer source is needed too."""
    emulate.emitted_model(model_dir, tflm)
    return deployed.load(model_dir)


def _flatbuffer(model_dir: Path) -> tflite_model.TfliteModel:
    try:
        return tflite_model.read((Path(model_dir) / "model.tflite").read_bytes())
    except (OSError, ValueError) as error:
        raise FootprintError(f"{model_dir}: cannot read model.tflite: {error}") from error


def macs(model_dir: Path) -> int:
    """Multiply-accumulates per inference of the model's flatbuffer (model.tflite in model_dir),
    every op counted (pipeline.int8.ops)."""
    return ops.macs(_flatbuffer(model_dir))


def cannot_run(engine: str, model_dir: Path, tflm_root: Path | None) -> str | None:
    """Why engine cannot be measured on the model in model_dir, in one line; None when it can."""
    if engine == "aot":
        refusal = reference.aot_refusal(_flatbuffer(model_dir))
        return None if refusal is None else f"the AOT engine cannot run this model: {refusal}"
    if tflm_root is None:
        return "no TFLM library tree (--tflm-root, or TFLM_ROOT, unset; see firmware/tflm.cmake)"
    return None


def iterations(first_us: int) -> int:
    """The timed run's length, from one inference's time (an upper bound of one iteration's
    instructions): as many as BENCH_BUDGET instructions hold, 1 to BENCH_MAX."""
    return max(1, min(BENCH_MAX, BENCH_BUDGET // max(first_us * 1000, 1)))


def _timeout(instructions: float) -> float:
    return 30.0 + instructions / QEMU_MIN_SPEED


def bench_instructions(elf: Path, model_id: str | None = None, n: int | None = None) -> dict[str, Any]:
    """Runs elf under qemu -icount shift=0 and times `bench 1` and `bench 1+n`, n from the first
    timing unless given: returns the instructions per bench iteration (see the module docstring),
    the timings and the device's identity (through the serial client, as every other tool talks
    to a device)."""
    try:
        with qemu.running(elf, icount=True) as port, Device(port, timeout=60) as device:
            identity = device.identify()
            if model_id is not None and identity.model != model_id:
                raise FootprintError(f"{elf.name} runs another model ({identity.model}) than expected ({model_id})")
            first = device.bench(1, timeout=_timeout(BENCH_BUDGET))
            n = n or iterations(first.us)
            second = device.bench(1 + n, timeout=_timeout(first.us * 1000.0 * (1 + n)))
    except DeviceError as error:
        raise FootprintError(f"{elf.name}: {error}") from error
    for asked, bench in ((1, first), (1 + n, second)):
        if bench.n != asked:
            raise FootprintError(f"{elf.name}: bench {asked} answered for n={bench.n}")
    # Each reading truncates to a whole microsecond, so the difference is within 2 us of the
    # truth: +-2000 / n instructions per iteration (0.02 over 100,000 iterations). Whole
    # instructions are the deterministic figure.
    per_iteration = round((second.us - first.us) * 1000 / n)
    return {"per_iteration": per_iteration, "us": {1: first.us, 1 + n: second.us}, "iterations": n,
            "identity": identity, "arena_bytes": identity.arena}


def stack_use(elf: Path) -> dict[str, int]:
    """Runs the measurement image and reads its stack high-water marks."""
    line = qemu.capture(elf, r"measure engine=\S+ stack_init=\d+ stack_invoke=\d+ painted=\d+ failed=\d",
                        timeout=300.0)
    values = dict(re.findall(r"(\w+)=(\d+)", line))
    if values.get("failed") != "0":
        raise FootprintError(f"{elf.name}: the engine failed during the stack measurement: {line}")
    if int(values["stack_invoke"]) >= int(values["painted"]):
        raise FootprintError(f"{elf.name}: engine_invoke used all {values['painted']} painted bytes of stack")
    return {"stack_bytes": int(values["stack_invoke"]), "stack_init_bytes": int(values["stack_init"]),
            "painted_bytes": int(values["painted"])}


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _build_dir(model_dir: Path, engine: str) -> Path:
    """build/qemu for the emitted model, build/qemu-<model id> for others. The TFLM images
    share build/qemu-tflm whatever the model (reconfigured per model): only the engine and
    the model data then recompile, not the whole TFLM library."""
    if engine == "tflm":
        return qemu.BUILD_DIR.parent / "qemu-tflm"
    if model_dir.resolve() == qemu.DEFAULT_MODEL_DIR.resolve():
        return qemu.BUILD_DIR
    return qemu.BUILD_DIR.parent / f"qemu-{_model(model_dir).id}"


def _stop_if_interrupted() -> None:
    """The build measures in a worker thread, which a Ctrl-C does not reach: it stops at the
    next step instead of making the interrupted build wait for the whole measurement."""
    import pipeline
    if pipeline.interrupted():
        raise FootprintError("interrupted")


def measure_engine(engine: str, model_dir: Path | None = None, tflm_root: Path | None = None,
                   build_dir: Path | None = None, verbose: bool = False) -> dict[str, Any]:
    """All figures for one engine (see the module docstring)."""
    spec = ENGINES[engine]
    model_dir = Path(model_dir or qemu.DEFAULT_MODEL_DIR).resolve()
    model = _model(model_dir)
    build_dir = Path(build_dir or _build_dir(model_dir, engine))
    root = tflm_root if engine == "tflm" else None

    def image(name: str) -> Path:
        _stop_if_interrupted()
        return qemu.build(build_dir, image=name, model_dir=model_dir, tflm_root=root, verbose=verbose)

    device, null, measure_elf = image(spec.device), image("tinyml_qemu_null"), image(spec.measure)
    device_map = parse_map(device.with_suffix(".map").read_text(encoding="utf-8"))
    null_map = parse_map(null.with_suffix(".map").read_text(encoding="utf-8"))
    objects, members = device_map.attribute(spec.is_ours)
    if not objects:
        raise FootprintError(f"{device.name}'s map names no {engine} engine objects")
    own, lib = _sum(objects), _sum(members)
    flash = own["text"] + own["rodata"] + own["data"] + lib["text"] + lib["rodata"] + lib["data"]
    ram = own["data"] + own["bss"] + lib["data"] + lib["bss"]

    _stop_if_interrupted()
    bench = bench_instructions(device, model.id)
    _stop_if_interrupted()
    baseline = bench_instructions(null, model.id)  # its own count: the loop alone, exact to 0.02
    _stop_if_interrupted()
    stack = stack_use(measure_elf)
    whole, empty = device_map.image(), null_map.image()
    per_inference = _number(round(bench["per_iteration"] - baseline["per_iteration"], 2))
    model_macs = macs(model_dir)
    return {
        "engine": engine,
        "model": model.description.name,
        "model_id": model.id,
        "flash_bytes": flash,
        "ram_bytes": ram,
        "stack_bytes": stack["stack_bytes"],
        "stack_init_bytes": stack["stack_init_bytes"],
        "instructions_per_inference": per_inference,
        "macs": model_macs,
        "instructions_per_mac": round(per_inference / model_macs, 2) if model_macs else None,
        "instructions_per_bench_iteration": _number(bench["per_iteration"]),
        "instructions_loop_overhead": _number(baseline["per_iteration"]),
        "arena_bytes": bench["arena_bytes"],
        "sections": {"text": own["text"] + lib["text"], "rodata": own["rodata"] + lib["rodata"],
                     "data": own["data"] + lib["data"], "bss": own["bss"] + lib["bss"]},
        "objects": {_short(name): sizes for name, sizes in sorted(objects.items())},
        "library_members": {_short(name): sizes for name, sizes in sorted(members.items())},
        "image": whole,
        "image_delta": {"flash_bytes": whole["flash_bytes"] - empty["flash_bytes"],
                        "ram_bytes": whole["ram_bytes"] - empty["ram_bytes"]},
        "bench_us": {"engine": bench["us"], "null_engine": baseline["us"]},
        "bench_iterations": bench["iterations"],
        "elf": str(device),
    }


def _tree(tflm_root: Path | str | None) -> Path | None:
    """The TFLM tree given, else $TFLM_ROOT, else None."""
    if tflm_root is None and os.environ.get("TFLM_ROOT"):
        tflm_root = os.environ["TFLM_ROOT"]
    return Path(tflm_root) if tflm_root else None


def _engines(engine: str) -> tuple[str, ...]:
    if engine not in ENGINE_CHOICES:
        raise FootprintError(f"unknown engine {engine!r} (choose from {', '.join(ENGINE_CHOICES)})")
    return ("aot", "tflm") if engine == "both" else (engine,)


def measure(model_dir: Path | None = None, tflm_root: Path | str | None = None, verbose: bool = False,
            engine: str = "both", build_dirs: dict[str, Path] | None = None) -> dict[str, dict[str, Any]]:
    """Figures per engine for the model in model_dir (default firmware/model): each engine of
    `engine` ("aot", "tflm" or "both") that can run it, {"skipped": why} for one that cannot. An
    engine asked for by name that cannot run the model is an error, and so is "both" when neither
    can."""
    model_dir = Path(model_dir or qemu.DEFAULT_MODEL_DIR).resolve()
    tree = _tree(tflm_root)
    results: dict[str, dict[str, Any]] = {}
    for name in _engines(engine):
        why = cannot_run(name, model_dir, tree)
        if why is not None and engine != "both":
            raise NoEngineError(f"--engine {name}: {why}")
        if why is not None:
            results[name] = {"skipped": why}
            continue
        try:
            results[name] = measure_engine(name, model_dir, tflm_root=tree, build_dir=(build_dirs or {}).get(name),
                                           verbose=verbose)
        except (FootprintError, qemu.QemuError) as failed:
            if engine != "both" or str(failed) == "interrupted":
                raise
            results[name] = {"skipped": f"measurement failed: {failed}"}  # the other engine may still measure
    if all("skipped" in figures for figures in results.values()):
        reasons = "; ".join(f"{name}: {figures['skipped']}" for name, figures in results.items())
        failed = any(figures["skipped"].startswith("measurement failed") for figures in results.values())
        raise (FootprintError if failed else NoEngineError)(f"no engine could be measured ({reasons})")
    return results


REPORTED = ("flash_bytes", "ram_bytes", "stack_bytes", "instructions_per_inference", "macs", "instructions_per_mac",
            "arena_bytes", "sections", "bench_iterations")
STAGE_DIR = qemu.BUILD_DIR.parent / "footprint"


def measure_sources(sources: dict[str, bytes], tflm_root: Path | str | None = None) -> dict[str, dict[str, Any]]:
    """The report's figures for model sources the build has not written yet.

    The build measures before it commits its outputs, so the sources are staged in
    build/footprint/model; files whose bytes did not change keep their mtime, which keeps
    the cross build incremental from one build to the next. Builds take turns on that
    staging (an exclusive lock on build/footprint/.lock, held from staging to the last
    measurement): two builds at once in one checkout would otherwise build and measure
    each other's model."""
    model_dir = STAGE_DIR / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(STAGE_DIR / ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in set(os.listdir(model_dir)) - set(sources):
            (model_dir / stale).unlink()
        for name, content in sources.items():
            path = model_dir / name
            if not path.is_file() or path.read_bytes() != content:
                path.write_bytes(content)
        measured = measure(model_dir, tflm_root, build_dirs={name: STAGE_DIR / name for name in ("aot", "tflm")})
        return {engine: {key: figures[key] for key in REPORTED} if "skipped" not in figures else figures
                for engine, figures in measured.items()}


def assess(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The AOT engine against the issue's targets, which are set for the single neuron
    ("neuron"): flash <= 1 KB, static RAM <= 64 B, >= 10x fewer instructions per inference
    than TFLM (measured when present, else TFLM_REFERENCE_INSTRUCTIONS). For other models the
    same comparisons are given with met = None (no target), and {} when the AOT engine was not
    measured."""
    aot = results.get("aot", {})
    if not aot or "skipped" in aot:
        return {}
    judged = aot["model"] == "neuron"
    measured_tflm = "tflm" in results and "skipped" not in results["tflm"]
    if measured_tflm:  # like with like: bench iterations, and engines alone
        tflm = results["tflm"]["instructions_per_bench_iteration"]
        tflm_engine, source = results["tflm"]["instructions_per_inference"], "measured"
    else:  # a figure measured elsewhere, per inference: set against the whole AOT iteration
        tflm = tflm_engine = TFLM_REFERENCE_INSTRUCTIONS.get(aot["model"])
        source = TFLM_REFERENCE_SOURCE

    def verdict(ok: bool) -> bool | None:
        return ok if judged else None

    out: dict[str, Any] = {
        "flash_bytes": {"value": aot["flash_bytes"], "target": TARGETS["flash_bytes"],
                        "met": verdict(aot["flash_bytes"] <= TARGETS["flash_bytes"])},
        "ram_bytes": {"value": aot["ram_bytes"], "target": TARGETS["ram_bytes"],
                      "met": verdict(aot["ram_bytes"] <= TARGETS["ram_bytes"])},
    }
    if not measured_tflm:
        out["tflm_reference"] = {"source": TFLM_REFERENCE_SOURCE, "instructions_per_inference": tflm,
                                 "arena_bytes": TFLM_REFERENCE_ARENA_BYTES.get(aot["model"]),
                                 "flash_bytes": TFLM_REFERENCE_FLASH_BYTES, "stack_bytes": TFLM_REFERENCE_STACK_BYTES}
    if tflm:
        # value: whole bench iterations (the loop included: conservative); engine_only: without.
        ratio = tflm / aot["instructions_per_bench_iteration"]
        out["instructions_ratio"] = {"tflm": tflm_engine, "tflm_source": source, "value": round(ratio, 1),
                                     "engine_only": round(tflm_engine / max(aot["instructions_per_inference"], 1), 1),
                                     "target": TARGETS["instructions_ratio"],
                                     "met": verdict(ratio >= TARGETS["instructions_ratio"])}
    return out


def _verdict(met: bool | None) -> str:
    return "no target" if met is None else "met" if met else "MISSED"


# ---- command line -----------------------------------------------------------------------------


def table(rows: Sequence[dict[str, Any]]) -> str:
    header = ("model", "engine", "flash B", "RAM B", "stack B", "instr/inference", "instr/iteration", "instr/MAC",
              "image flash B", "image delta B")
    lines = [header]
    for row in rows:
        lines.append((row["model"], row["engine"], str(row["flash_bytes"]), str(row["ram_bytes"]),
                      str(row["stack_bytes"]), str(row["instructions_per_inference"]),
                      str(row["instructions_per_bench_iteration"]),
                      "-" if row.get("instructions_per_mac") is None else f"{row['instructions_per_mac']:.2f}",
                      str(row["image"]["flash_bytes"]),
                      str(row["image_delta"]["flash_bytes"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(line, widths))) for line in lines)


@cli.command
def main(argv: list[str]) -> int:
    parser = cli.parser(
        "footprint",
        description="Measure what the inference part costs on the Cortex-M4 (QEMU mps2-an386 build): flash, "
                    "static RAM, stack and executed instructions per inference, per engine.",
        epilog=cli.EXIT_STATUSES)
    parser.add_argument("--model-dir", type=Path, action="append", metavar="DIR",
                        help="emitted model sources (default firmware/model); repeat for several models")
    parser.add_argument("--engine", choices=ENGINE_CHOICES, default="both",
                        help="which engine to measure: both (default) measures each that can run the model and "
                             "says why another was skipped; aot or tflm alone, an error when it cannot")
    parser.add_argument("--tflm-root", type=Path, metavar="DIR",
                        help="TFLM library tree (default $TFLM_ROOT): the TFLM engine is measured with it")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    parser.add_argument("--verbose", action="store_true", help="show the build output")
    args = parser.parse_args(argv)
    model_dirs = args.model_dir or [qemu.DEFAULT_MODEL_DIR]
    for model_dir in model_dirs:
        _model(Path(model_dir), _tree(args.tflm_root) is not None and args.engine != "aot")  # before minutes of measuring
    if args.tflm_root is not None and not args.tflm_root.is_dir():
        raise NoEngineError(f"--tflm-root {args.tflm_root}: not a directory")
    reports = []
    started = time.monotonic()
    for model_dir in model_dirs:
        results = measure(model_dir, args.tflm_root, verbose=args.verbose, engine=args.engine)
        reports.append({"engines": results, "targets": assess(results)})
    if args.json:
        print(json.dumps(reports[0]["engines"] if len(reports) == 1 else [r["engines"] for r in reports], indent=2))
        return 0
    rows = [dict(values, engine=engine) for report in reports for engine, values in report["engines"].items()
            if "skipped" not in values]
    print(table(rows))
    print()
    for report in reports:
        for engine, values in report["engines"].items():
            if "skipped" in values:
                print(f"{engine} not measured: {values['skipped']}")
        aot = report["engines"].get("aot", {})
        targets = report["targets"]
        if not targets:
            continue
        line = (f"{aot['model']}: AOT flash {aot['flash_bytes']} B (target <= {TARGETS['flash_bytes']}: "
                f"{_verdict(targets['flash_bytes']['met'])}), static RAM {aot['ram_bytes']} B "
                f"(target <= {TARGETS['ram_bytes']}: {_verdict(targets['ram_bytes']['met'])})")
        ratio = targets.get("instructions_ratio")
        if ratio:
            line += (f"; TFLM {ratio['tflm']} instructions per inference ({ratio['tflm_source']}), "
                     f"TFLM/AOT = {ratio['value']}x per bench iteration, {ratio['engine_only']}x engines alone "
                     f"(target >= {ratio['target']:g}x: {_verdict(ratio['met'])})")
        print(line)
    if "skipped" in reports[0]["engines"].get("tflm", {}) and reports[0]["targets"]:
        print(f"{TFLM_REFERENCE_SOURCE}: {TFLM_REFERENCE_FLASH_BYTES} B flash, {TFLM_REFERENCE_STACK_BYTES} B stack")
    print(f"({time.monotonic() - started:.1f} s)")
    return 0

