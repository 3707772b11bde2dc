"""pipeline.footprint: the inference part's flash, RAM, stack and instructions on the Cortex-M4."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.footprint import measurement as footprint
from pipeline.emulation import qemu

ROOT = Path(__file__).resolve().parent.parent

MAP = """\
Archive member included to satisfy reference by file (symbol)

/usr/lib/libgcc.a(_helper.o)
                              CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj (__helper)
/usr/lib/libgcc.a(_deeper.o)
                              /usr/lib/libgcc.a(_helper.o) (__deeper)
/usr/lib/libc_nano.a(lib_a-memcpy.o)
                              CMakeFiles/tinyml_core.dir/x/core/protocol.c.obj (memcpy)

Discarded input sections

 .text          0x00000000        0x0 CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj
 .text.unused   0x00000000       0x40 CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj

Memory Configuration

Linker script and memory map

LOAD CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj

.text           0x00000000      0x200
 *(.vectors)
 .vectors       0x00000000       0x40 CMakeFiles/qemu_platform.dir/startup.c.obj
                0x00000000                g_vectors
 .text.engine_invoke
                0x00000040       0x24 CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj
                0x00000040                engine_invoke
 .text.model_aot_invoke
                0x00000064       0x6c CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj
 .text          0x000000d0       0x10 /usr/lib/libgcc.a(_helper.o)
 .text          0x000000e0        0x8 /usr/lib/libgcc.a(_deeper.o)
 .text          0x000000e8       0x30 /usr/lib/libc_nano.a(lib_a-memcpy.o)
 *fill*         0x00000118        0x2 
 .rodata.w0     0x0000011a        0x2 CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj
 .rodata.str1.1
                0x0000011c        0x9 CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj
                                 0xc (size before relaxing)

.ARM.exidx      0x00000200        0x8
 .ARM.exidx     0x00000200        0x8 /usr/lib/libgcc.a(_deeper.o)

.data           0x20000000        0x4 load address 0x00000208
 .data.g_error  0x20000000        0x4 CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj

.bss            0x20000004       0x20 load address 0x0000020c
 .bss.g_app     0x20000004       0x18 CMakeFiles/tinyml_qemu.dir/main.c.obj
 .bss.scratch   0x2000001c        0x8 CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj

.stack          0x20000028     0x4000
                0x20000028                __stack_limit = .

.debug_info     0x00000000     0x1000
 .debug_info    0x00000000      0x100 CMakeFiles/engine_aot.dir/x/engines/engine_aot.c.obj
"""


def test_parse_map_attributes_sections_to_objects() -> None:
    parsed = footprint.parse_map(MAP)
    assert parsed.image() == {"flash_bytes": 0x200 + 0x8 + 0x4, "ram_bytes": 0x4 + 0x20,
                              "stack_reserved_bytes": 0x4000}
    objects, members = parsed.attribute(footprint.ENGINES["aot"].is_ours)
    assert {footprint._short(k): v for k, v in objects.items()} == {
        "engine_aot.c": {"text": 0x24 + 0x6c, "rodata": 9 + 2, "data": 4, "bss": 8},  # not the discarded .text.unused
    }
    # Pulled in by the engine, directly or through another member; memcpy was the core's.
    assert {footprint._short(k): v["text"] for k, v in members.items()} == {
        "libgcc.a(_helper.o)": 0x10, "libgcc.a(_deeper.o)": 0x8 + 0x8}


requires_qemu = pytest.mark.skipif(bool(qemu.toolchain_problem() or qemu.qemu_problem()),
                                   reason=f"needs {qemu.DEBIAN_PACKAGES}: "
                                          f"{qemu.toolchain_problem() or qemu.qemu_problem()}")


@pytest.fixture(scope="module")
def measured() -> dict:
    if qemu.toolchain_problem() or qemu.qemu_problem():
        pytest.skip(f"needs {qemu.DEBIAN_PACKAGES}")
    return footprint.measure()


@requires_qemu
def test_aot_figures(measured: dict) -> None:
    aot = measured["aot"]
    assert set(measured) == {"aot"} or "tflm" in measured
    assert 0 < aot["flash_bytes"] == sum(aot["sections"][k] for k in ("text", "rodata", "data"))
    assert aot["ram_bytes"] == aot["sections"]["data"] + aot["sections"]["bss"]
    assert aot["arena_bytes"] == 0
    assert aot["stack_bytes"] > 0
    # Deterministic (-icount shift=0): whole instructions, the loop measured apart.
    assert aot["instructions_loop_overhead"] > 0
    assert aot["instructions_per_bench_iteration"] == aot["instructions_per_inference"] + aot["instructions_loop_overhead"]
    # The whole-image cross-check agrees within the empty engine's own few bytes.
    assert 0 <= aot["flash_bytes"] - aot["image_delta"]["flash_bytes"] < 100
    # Multiply-accumulates: one per weight of the emitted model's FULLY_CONNECTED ops.
    assert aot["macs"] == footprint.macs(qemu.DEFAULT_MODEL_DIR) > 0
    assert aot["instructions_per_mac"] == round(aot["instructions_per_inference"] / aot["macs"], 2)


@requires_qemu
def test_single_neuron_meets_the_targets(measured: dict) -> None:
    aot = measured["aot"]
    if aot["model"] != "neuron":
        pytest.skip(f"the targets are set for the single neuron, not {aot['model']}")
    verdict = footprint.assess(measured)
    assert aot["flash_bytes"] <= 1024 and verdict["flash_bytes"]["met"]
    assert aot["ram_bytes"] <= 64 and verdict["ram_bytes"]["met"]
    assert verdict["instructions_ratio"]["value"] >= 10 and verdict["instructions_ratio"]["met"]


@requires_qemu
def test_cli_prints_the_table_and_json_only_when_asked() -> None:
    table = subprocess.run([sys.executable, "-m", "pipeline.footprint"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["model", "engine", "flash"]
    assert not any(line.lstrip().startswith(("{", "}", '"')) for line in lines), table.stdout
    assert len(lines) < 10
    as_json = subprocess.run([sys.executable, "-m", "pipeline.footprint", "--json"], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["aot"]["flash_bytes"] > 0 and str(data["aot"]["flash_bytes"]) in lines[1].split()


def test_tflm_reference_is_the_pinned_library_measured() -> None:
    verdict = footprint.assess({"aot": {"model": "neuron", "flash_bytes": 209, "ram_bytes": 4,
                                        "instructions_per_inference": 34, "instructions_per_bench_iteration": 46}})
    assert verdict["instructions_ratio"]["tflm"] == 592
    assert verdict["instructions_ratio"]["tflm_source"].startswith("Chirale 2.0.0")
    assert verdict["tflm_reference"]["arena_bytes"] == 516


MEASURE = """
import json, sys
from pathlib import Path
from pipeline.footprint import measurement as footprint
folder = Path(sys.argv[1])
print(json.dumps(footprint.measure_sources({p.name: p.read_bytes() for p in folder.iterdir()})))
"""


@requires_qemu
def test_concurrent_builds_measure_their_own_model(tmp_path: Path) -> None:
    """Two builds in one checkout share build/footprint: each must still measure its own model
    (unlocked, one of them built the other's sources and stopped on 'runs another model')."""
    from pipeline import build
    folders = {}
    for model in ("neuron", "two-layer"):
        folders[model] = tmp_path / model
        assert build.main(["-q", "--no-footprint", "--model", model, "--out", str(folders[model]),
                           "--report-dir", str(tmp_path / f"report-{model}")]) == 0

    def start(model: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", MEASURE, str(folders[model])], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result(process: subprocess.Popen) -> dict:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        return json.loads(out)

    alone = {model: result(start(model)) for model in folders}
    assert alone["neuron"]["aot"]["flash_bytes"] != alone["two-layer"]["aot"]["flash_bytes"]
    for _ in range(2):
        running = {model: start(model) for model in folders}
        together = {model: result(process) for model, process in running.items()}
        assert together == alone


def test_macs_count_every_fully_connected_weight(tmp_path: Path) -> None:
    import trained
    (tmp_path / "model.tflite").write_bytes(trained.random_tflite(3, (16, 8), 2, "relu", False))
    assert footprint.macs(tmp_path) == 3 * 16 + 16 * 8 + 8 * 2


def test_build_lines_give_instructions_per_mac_and_the_tflm_ratio() -> None:
    """The build's footprint lines: the AOT engine's instructions per MAC, and where TFLM was measured
    on the same image and model, how many times fewer instructions the AOT engine executes."""
    from pipeline.emit import report
    aot = {"flash_bytes": 1397, "ram_bytes": 4, "stack_bytes": 84, "instructions_per_inference": 762, "macs": 288,
           "instructions_per_mac": 2.65, "arena_bytes": 0}
    tflm = {"flash_bytes": 40619, "ram_bytes": 900, "stack_bytes": 764, "instructions_per_inference": 3877,
            "macs": 288, "instructions_per_mac": 13.46, "arena_bytes": 820}
    assert report.footprint_lines({"aot": aot}) == [
        "footprint aot: flash 1397 B, RAM 4 B (data + bss), stack 84 B, 762 instructions per inference "
        "(2.65 per MAC)"]
    assert report.footprint_lines({"aot": aot, "tflm": tflm}) == [
        "footprint aot: flash 1397 B, RAM 4 B (data + bss), stack 84 B, 762 instructions per inference "
        "(2.65 per MAC, 5.1x fewer than TFLM's 3877)",
        "footprint tflm: flash 40619 B, RAM 900 B (data + bss), stack 764 B, 3877 instructions per inference, "
        "arena 820 B"]


def test_build_lines_say_when_the_aot_engine_is_the_slower() -> None:
    """A convolutional model on the AOT engine's portable kernels: the line says how many times more."""
    from pipeline.emit import report
    aot = {"flash_bytes": 31151, "ram_bytes": 16004, "stack_bytes": 140, "instructions_per_inference": 55943989,
           "macs": 2664768, "instructions_per_mac": 20.99, "arena_bytes": 16000}
    tflm = {"flash_bytes": 125022, "ram_bytes": 31157, "stack_bytes": 1140, "instructions_per_inference": 9916489,
            "macs": 2664768, "instructions_per_mac": 3.72, "arena_bytes": 24164}
    assert report.footprint_lines({"aot": aot, "tflm": tflm})[0] == (
        "footprint aot: flash 31151 B, RAM 16004 B (data + bss), stack 140 B, 55943989 instructions per inference "
        "(20.99 per MAC, 5.6x more than TFLM's 9916489), arena 16000 B")
