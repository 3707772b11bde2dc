"""The docs' examples are the program's own output: each is produced here and compared, so none can drift."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rawserial
from toolchains import tflm_root
from pipeline.emulation import qemu

ROOT = Path(__file__).resolve().parent.parent
SECONDS = re.compile(r"\b\d+\.\d+ s\b")


def code_block_after(doc: Path, heading: str) -> list[str]:
    """The lines of the first ``` block after the line `heading` (a heading or a sentence)."""
    text = doc.read_text(encoding="utf-8")
    start = text.index(heading)
    body = text[text.index("```", start):]
    body = body[body.index("\n") + 1:]
    return body[:body.index("```")].rstrip("\n").split("\n")


def test_protocol_example_session_is_the_devices(device_port: str) -> None:
    lines = code_block_after(ROOT / "docs" / "protocol.md", "## An example session")
    requests = [(lines[k][2:], lines[k + 1]) for k in range(0, len(lines), 2)]
    assert all(line.startswith("> ") for line in lines[::2]) and len(requests) >= 5
    device = rawserial.Device(device_port)
    try:
        answers = [(request, device.ask(request)) for request, _ in requests]
    finally:
        device.close()
    assert answers == requests


def test_readme_default_build_output_is_the_builds(tmp_path: Path) -> None:
    """README's block equals what `python -m pipeline.build` prints, but for seconds, which vary."""
    tree = tflm_root()
    run = subprocess.run([sys.executable, "-m", "pipeline.build", "--out", str(tmp_path / "model"),
                          "--report-dir", str(tmp_path / "report")], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env=dict(os.environ, TFLM_ROOT=str(tree) if tree else ""))
    assert run.returncode == 0, run.stderr
    printed = [line for line in run.stdout.splitlines() if not line.startswith("wrote ")]
    documented = code_block_after(ROOT / "README.md", "The default build prints")
    if qemu.toolchain_problem() or qemu.qemu_problem() or tflm_root() is None:
        # The block shows the footprint with a TFLM tree (TFLM_ROOT); without one the tflm line says why not.
        if tflm_root() is None and not (qemu.toolchain_problem() or qemu.qemu_problem()):
            assert any(line.startswith("footprint tflm: not measured (no TFLM library tree") for line in printed)
        printed = [line for line in printed if not line.startswith("footprint")]
        documented = [line for line in documented if not line.startswith("footprint")]
    assert [SECONDS.sub("S s", line) for line in documented] == [SECONDS.sub("S s", line) for line in printed]


def test_qemu_doc_neuron_aot_row_is_measured() -> None:
    """docs/qemu.md's AOT figures for the committed model are what footprint measures today."""
    if qemu.toolchain_problem() or qemu.qemu_problem():
        pytest.skip(qemu.toolchain_problem() or qemu.qemu_problem())
    from pipeline.footprint import measurement as footprint
    row = next(line for line in (ROOT / "docs" / "qemu.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| neuron | AOT |"))
    cells = [int(cell.replace(",", "")) for cell in row.strip("|").split("|")[2:]]
    aot = footprint.measure()["aot"]
    assert cells == [aot["flash_bytes"], aot["ram_bytes"], aot["stack_bytes"], aot["instructions_per_inference"],
                     aot["instructions_per_bench_iteration"]]


def test_every_link_of_the_readme_and_docs_leads_somewhere():
    """Relative links name a file of the repository, and an anchor of it that exists (GitHub's rule:
    the heading lowercased, punctuation dropped, spaces as hyphens); each docs page is linked from
    the README."""
    import re

    def anchors(page: Path) -> set[str]:
        return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in page.read_text().splitlines() if line.startswith("#")}

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            path, _, anchor = target.partition("#")
            if target.startswith("http"):
                continue
            dest = page.parent / path if path else page
            if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
                broken.append(f"{page.name}: {target}")
    assert broken == []
    readme = (ROOT / "README.md").read_text()
    assert all(f"(docs/{page.name})" in readme for page in pages[1:])
