"""A bounded libFuzzer session over the firmware core, with AddressSanitizer and UBSan: any finding fails.

CI spends about half a minute here (FUZZ_SECONDS per harness); run it much longer by hand
with the command in firmware/fuzz/fuzz_protocol.c.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import toolchains

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
SECONDS = int(os.environ.get("FUZZ_SECONDS", "12"))

_problem = toolchains.fuzz_problem()
pytestmark = pytest.mark.skipif(_problem is not None, reason=_problem or "")


@pytest.fixture(scope="module")
def fuzzers() -> Path:
    build = ROOT / "build" / "fuzz"
    toolchains.cmake(["-S", str(ROOT / "firmware"), "-B", str(build), "-DFUZZ=ON", "-DCMAKE_C_COMPILER=clang",
                      "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], "configuring the fuzzers")
    toolchains.cmake(["--build", str(build), "--target", "fuzz_protocol", "fuzz_numbers"], "building the fuzzers")
    return build


@pytest.mark.parametrize("harness,corpus", [("fuzz_protocol", "protocol"), ("fuzz_numbers", "numbers")])
def test_bounded_fuzz_session_finds_nothing(fuzzers, harness, corpus, tmp_path):
    work = tmp_path / "corpus"
    shutil.copytree(CORPUS / corpus, work)
    run = subprocess.run([str(fuzzers / harness), str(work), f"-max_total_time={SECONDS}", "-max_len=4096",
                          "-print_final_stats=1", f"-artifact_prefix={tmp_path}/"],
                         capture_output=True, text=True, timeout=SECONDS + 120)
    findings = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-", "timeout-", "oom-"))]
    tail = "\n".join(run.stderr.splitlines()[-25:])
    assert run.returncode == 0 and not findings, f"{harness} found {findings}:\n{tail}"
    runs = [line for line in run.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
    assert runs and int(runs[0].split(":")[-1]) > 1000, tail


def test_seed_corpus_passes_the_harness_checks(fuzzers: Path) -> None:
    """Every seed (Backspace, echoes, the echo memory's edge, ...) once through the checks."""
    seeds = sorted(str(p) for p in (CORPUS / "protocol").iterdir())
    run = subprocess.run([str(fuzzers / "fuzz_protocol"), *seeds], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, "\n".join(run.stderr.splitlines()[-25:])
    assert run.stderr.count("Executed ") == len(seeds)


def test_seed_corpus_starts_the_fuzzer_from_long_lines() -> None:
    """Lines past the stored 128 bytes (queries parsed field by field, commands refused, the
    echo of `id`) are in the seeds, so the fuzzer mutates them from its first run."""
    longest = {p.name: max(len(line) for line in p.read_bytes().replace(b"\r", b"\n").split(b"\n"))
               for p in (CORPUS / "protocol").iterdir()}
    assert {"long_query", "long_codes", "long_field", "long_command", "long_echo"} <= set(longest)
    assert all(longest[name] > 128 for name in ("long_query", "long_codes", "long_field", "long_command", "long_echo"))


def test_bench_is_capped_in_the_fuzz_build(fuzzers: Path, tmp_path: Path) -> None:
    """400 lines of `bench 1000000` would take minutes of inferences; capped, they are errors."""
    heavy = tmp_path / "bench_heavy"
    heavy.write_bytes(b"bench 1000000\n" * 400 + b"bench 100\n")
    start = time.monotonic()
    run = subprocess.run([str(fuzzers / "fuzz_protocol"), str(heavy)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, "\n".join(run.stderr.splitlines()[-25:])
    assert time.monotonic() - start < 20
