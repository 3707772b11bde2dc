"""Text the emitter quotes into C (a model's file name, its labels, a refusal naming its tensors) cannot
break the generated sources: each character class compiled by the real compilers, with trigraphs on and
warnings as errors, and each literal's value read back from a compiled program byte for byte."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tflite_writer as w
from pipeline.emit import sources
from pipeline.emit.c_text import c_comment, c_string
from pipeline.int8 import tflite_model
from pipeline.int8.description import encode_label

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
CC = shutil.which("gcc") or shutil.which("cc")
CXX = shutil.which("g++") or shutil.which("c++")
needs_cc = pytest.mark.skipif(CC is None or CXX is None, reason="needs gcc and g++ (Debian package g++)")
STRICT = ["-Wall", "-Wextra", "-Werror", "-trigraphs"]
"""Trigraphs on, so a `??=` left in a literal would turn into `#` and fail the round trip."""

TEXTS = {
    "newline": "a\n#error injected",
    "carriage return": "a\r#error injected",
    "quote": 'say "hi"',
    "backslash": "C:\\models\\x.tflite\\",
    "comment end": "a */ int broken; /* b",
    "line comment": "a // b",
    "trigraph": "what??=no??/ ??' ??(",
    "tab": "a\tb",
    "control bytes": "\x01\x07\x1b[31m\x7f",
    "octal escape then digits": "\x01" + "234",
    "utf-8": "café ☃ 日本",
    "undecodable file name": "model\udcff\udcfe",
    "percent": "100%d %s",
}
"""One text per character class; no NUL (a file name or label cannot hold one)."""


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _compile(compiler: str, source: Path, *flags: str, output: Path | None = None) -> None:
    args = [compiler, *STRICT, *flags, str(source)] + (["-o", str(output)] if output else ["-fsyntax-only"])
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr


def _printer(literals: list[str]) -> str:
    """A program printing each literal's bytes in hex, one line each (its length from sizeof, so a
    literal that ended early or ran long shows)."""
    rows = ",\n".join(f"  {{{lit}, sizeof({lit}) - 1}}" for lit in literals)
    return ("#include <stdio.h>\n"
            "static const struct { const char *text; unsigned long size; } k_texts[] = {\n" + rows + "\n};\n"
            "int main(void) {\n"
            "  for (unsigned long i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++) {\n"
            "    for (unsigned long j = 0; j < k_texts[i].size; j++) printf(\"%02x\", (unsigned char)k_texts[i].text[j]);\n"
            "    printf(\"\\n\");\n  }\n  return 0;\n}\n")


@needs_cc
@pytest.mark.parametrize("compiler,suffix,standard", [("CC", ".c", "-std=c99"), ("CXX", ".cpp", "-std=c++11")])
def test_every_literal_holds_exactly_its_text(tmp_path, compiler, suffix, standard):
    source = tmp_path / f"texts{suffix}"
    source.write_text(_printer([c_string(text) for text in TEXTS.values()]))
    exe = tmp_path / "texts"
    _compile(CC if compiler == "CC" else CXX, source, standard, output=exe)
    printed = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert printed == [_utf8(text).hex() for text in TEXTS.values()]


def test_literals_are_one_line_of_ascii_with_no_trigraph():
    for name, text in TEXTS.items():
        literal = c_string(text)
        assert literal.isascii() and literal.isprintable() and "??" not in literal, name
    assert c_string('a"b\\c?\n\x01' "7") == '"a\\"b\\\\c\\?\\n\\0017"'
    assert c_string("café") == '"caf\\303\\251"'


@needs_cc
def test_every_comment_stays_one_comment(tmp_path):
    lines = [f"/* {c_comment(text)} */ static const int k_after_{k} = {k};" for k, text in enumerate(TEXTS.values())]
    uses = " + ".join(f"k_after_{k}" for k in range(len(TEXTS)))
    source = tmp_path / "comments.c"
    source.write_text("\n".join(lines) + f"\nint main(void) {{ return {uses} == {sum(range(len(TEXTS)))} ? 0 : 1; }}\n")
    exe = tmp_path / "comments"
    _compile(CC, source, "-std=c99", "-Wcomment", output=exe)
    assert subprocess.run([str(exe)], check=False).returncode == 0
    for text in TEXTS.values():
        shown = c_comment(text)
        assert shown.isascii() and shown.isprintable() and "*/" not in shown and "/*" not in shown
        assert c_comment(shown) == shown  # already safe text passes unchanged
    assert c_comment("a */ b /* c\n") == "a *\\/ b /\\* c\\x0A"


# ---- the emitted sources ---------------------------------------------------------------------------------

NAME = "".join(TEXTS.values())
LABELS = ('a"b', "c\\d", "??=", "x */ y", "p /* q", "café ☃", "100%", "?")
"""Every class a label may hold (controls and tabs are refused by the label rule; encode_label sends
spaces and UTF-8 as %XX, so what reaches C is printable ASCII: quotes, backslashes, trigraphs, `*/`)."""


def classifier(classes: int = len(LABELS), weights_name: str = "dense0/weights", weights_zero_point: int = 0) -> bytes:
    """A dense classifier written from fixed integers: 4 inputs, `classes` softmax outputs."""
    rng = np.random.default_rng(7)
    weights = rng.integers(-60, 60, size=(classes, 4)).astype(np.int8)
    bias = rng.integers(-500, 500, size=classes).astype(np.int32)
    tensors = [w.tensor("input", (1, 4), 0.05, -3),
               w.tensor(weights_name, (classes, 4), 1 / 64, weights_zero_point, weights),
               w.tensor("dense0/bias", (classes,), 0.05 / 64, 0, bias, "INT32"),
               w.tensor("logits", (1, classes), 0.2, 4),
               w.tensor("probabilities", (1, classes), 1 / 256, -128)]
    return w.write(tensors, [w.fully_connected(0, 1, 2, 3), w.softmax(3, 4)], [0], [4])


def emitted(folder: Path, name: str, labels: tuple[str, ...], tflite: bytes, engine: str = "aot") -> dict[str, bytes]:
    tfl = tflite_model.read(tflite)
    facts = sources.facts(tfl, name, (-6.25, 6.5), 1024, 16.0, task="classify", labels=labels)
    files = sources.sources(tflite, tfl, facts, {"codes": [], "float": []}, engine=engine)
    folder.mkdir(parents=True, exist_ok=True)
    for file, data in files.items():
        (folder / file).write_bytes(data)
    return files


LABEL_PRINTER = """#include <stdio.h>
#include "model_info.h"
#define PRINT_LABEL(text) print_hex(text, sizeof(text) - 1);
static void print_hex(const char *text, unsigned long size) {
  for (unsigned long j = 0; j < size; j++) printf("%02x", (unsigned char)text[j]);
  printf("\\n");
}
int main(void) {
  print_hex(MODEL_NAME, sizeof(MODEL_NAME) - 1);
  print_hex(MODEL_ID, sizeof(MODEL_ID) - 1);
  MODEL_LABELS(PRINT_LABEL)
  return 0;
}
"""


@needs_cc
def test_the_emitted_sources_compile_and_hold_the_name_and_labels(tmp_path):
    folder = tmp_path / "model"
    files = emitted(folder, NAME, LABELS, classifier())
    for file in ("model_info.h", "model_aot.h", "model_data.cpp", "model_data.h"):
        text = files[file].decode("ascii")
        assert all(line.isprintable() for line in text.splitlines()), file
        assert not any(line.startswith("#error") for line in text.splitlines()), file
    program = folder / "print.c"
    program.write_text(LABEL_PRINTER)
    _compile(CC, program, "-std=c99", "-I", str(folder), output=tmp_path / "print")
    printed = subprocess.run([str(tmp_path / "print")], capture_output=True, text=True, check=True).stdout.splitlines()
    sha = hashlib.sha256(files["model.tflite"]).hexdigest()
    assert printed == [_utf8(NAME).hex(), sha[:12].encode().hex(), *(encode_label(s).encode().hex() for s in LABELS)]
    _compile(CXX, folder / "model_data.cpp", "-std=c++11", "-I", str(folder))
    engines = ["-I", str(folder), "-I", str(FIRMWARE / "core"), "-I", str(FIRMWARE / "engines")]
    _compile(CC, FIRMWARE / "engines" / "engine_aot.c", "-std=c99", *engines)
    _compile(CC, FIRMWARE / "core" / "app.c", "-std=c99", *engines)


@needs_cc
def test_a_refusal_naming_a_tensor_is_one_error_line(tmp_path):
    """A model the AOT engine refuses, for the TFLM engine: model_aot.h's #error quotes the refusal, which
    names the tensor; the name cannot add a line, a directive or a second error."""
    bad = "w\n#error injected */ \"x\\"
    files = emitted(tmp_path / "model", "refused", ("a", "b"), classifier(2, bad, weights_zero_point=1), "tflm")
    header = files["model_aot.h"].decode("ascii")
    assert [line.split()[0] for line in header.splitlines() if line.startswith("#")] == ["#define", "#error"]
    run = subprocess.run([CC, *STRICT, "-std=c99", "-fsyntax-only", "-x", "c", str(tmp_path / "model" / "model_aot.h")],
                         capture_output=True, text=True, check=False)
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert run.returncode != 0 and len(errors) == 1, run.stderr
    assert "the AOT engine cannot run this model" in errors[0] and "nonzero zero points" in errors[0]
    literal = header.splitlines()[2][len("#error "):]
    source = tmp_path / "value.c"
    source.write_text(_printer([literal]))
    _compile(CC, source, "-std=c99", output=tmp_path / "value")
    value = bytes.fromhex(subprocess.run([str(tmp_path / "value")], capture_output=True, text=True, check=True).stdout)
    assert f"weights '{bad}' have nonzero zero points".encode() in value


@needs_cc
def test_a_file_name_with_a_newline_and_a_directive_builds_end_to_end(tmp_path):
    """The issue's case, as typed: `python -m pipeline.build --tflite "$(printf 'a\\n#error injected.tflite')"`."""
    model = tmp_path / 'a\n#error injected "x" \\ ??= *.tflite'  # a file name cannot hold `*/`
    model.write_bytes(classifier(3))
    out, report = tmp_path / "out" / "model", tmp_path / "out" / "report"
    run = subprocess.run([sys.executable, "-m", "pipeline.build", "-q", "--no-footprint", "--tflite", str(model),
                          "--labels", 'a"b,c\\d,??=', "--out", str(out), "--report-dir", str(report)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr
    info = (out / "model_info.h").read_text("ascii")
    assert not any(line.startswith("#error") for line in info.splitlines())
    assert '#define MODEL_NAME "a\\n#error injected \\"x\\" \\\\ \\?\\?= *"\n' in info
    assert info.startswith("/* Generated by python -m pipeline.build: do not edit. "
                           "Model: a\\x0A#error injected \"x\" \\ ??= *. */\n")
    assert '#define MODEL_LABELS(LABEL) LABEL("a\\"b") LABEL("c\\\\d") LABEL("\\?\\?=")' in info
    program = out / "print.c"
    program.write_text(LABEL_PRINTER)
    _compile(CC, program, "-std=c99", "-I", str(out), output=tmp_path / "print")
    printed = subprocess.run([str(tmp_path / "print")], capture_output=True, text=True, check=True).stdout.splitlines()
    assert [bytes.fromhex(line) for line in printed[:1] + printed[2:]] == [
        model.stem.encode(), b'a"b', b"c\\d", b"??="]
    engines = ["-I", str(out), "-I", str(FIRMWARE / "core"), "-I", str(FIRMWARE / "engines")]
    _compile(CC, FIRMWARE / "engines" / "engine_aot.c", "-std=c99", *engines)
    _compile(CXX, out / "model_data.cpp", "-std=c++11", "-I", str(out))
