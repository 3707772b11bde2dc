"""One table of ERR codes: firmware/core/errors.h. The Python client's ErrorCode and the
table in docs/protocol.md are checked against it, and the C core must answer with its
names, never a bare number, so none of the four can drift from the others."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "firmware" / "core" / "errors.h"
CLIENT = ROOT / "pipeline" / "device" / "serial_client.py"
DOC = ROOT / "docs" / "protocol.md"
CORE = ROOT / "firmware" / "core"

ROW = re.compile(r'^\s*X\((\w+),\s*(\d+),\s*"([^"]*)"\)', re.M)


def header_table() -> list[tuple[str, int, str]]:
    """(name, code, meaning) rows of PROTO_ERRORS, in order."""
    text = HEADER.read_text(encoding="utf-8")
    start = text.index("#define PROTO_ERRORS(X)")
    block = text[start:text.index("\n\n", start)]  # the macro: continued lines up to a blank line
    rows = [(name, int(code), meaning) for name, code, meaning in ROW.findall(block)]
    assert rows and len(rows) == block.count("X("), f"a row of PROTO_ERRORS is not X(NAME, code, \"meaning\"):\n{block}"
    return rows


def client_codes() -> dict[str, int]:
    """ErrorCode's members, read from the source (importing would need pyserial and a port-free import)."""
    tree = ast.parse(CLIENT.read_text(encoding="utf-8"))
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "ErrorCode")
    return {stmt.targets[0].id: stmt.value.value for stmt in cls.body
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)}


def doc_table() -> list[tuple[int, str, str]]:
    """(code, meaning, example) rows of the table under "## Errors"."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Errors"):]
    section = section[:section.index("\n## ", 1)]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1], cells[2]))
    return rows


def test_header_codes_are_unique() -> None:
    rows = header_table()
    assert len({code for _, code, _ in rows}) == len(rows)
    assert len({name for name, _, _ in rows}) == len(rows)


def test_client_names_every_code_as_the_header_does() -> None:
    assert client_codes() == {name: code for name, code, _ in header_table()}


def test_doc_table_lists_every_code_with_the_headers_meaning() -> None:
    assert [(code, meaning) for code, meaning, _ in doc_table()] == \
        [(code, meaning) for _, code, meaning in header_table()]


def test_doc_examples_carry_their_rows_code() -> None:
    rows = doc_table()
    assert rows
    for code, _, example in rows:
        shown = [int(c) for c in re.findall(r"`ERR (\d+) ", example)]
        assert shown and set(shown) == {code}, (code, example)


def test_every_err_line_in_the_doc_has_a_known_code() -> None:
    codes = {code for _, code, _ in header_table()}
    used = {int(c) for c in re.findall(r"\bERR (\d+)\b", DOC.read_text(encoding="utf-8"))}
    assert used and used <= codes, used - codes


def test_core_answers_with_the_tables_names() -> None:
    """No bare number where the core writes an error, and every code is one it can answer."""
    sources = {path.name: path.read_text(encoding="utf-8") for path in sorted(CORE.glob("*.c"))}
    for name, text in sources.items():
        assert not re.search(r"put_(?:field_)?error\([^,]*,\s*\d", text), f"{name}: an ERR code as a number"
        assert not re.search(r'"ERR \d', text), f"{name}: an ERR line spelled out"
    together = "\n".join(sources.values())
    unused = [name for name, _, _ in header_table() if f"PROTO_ERR_{name}" not in together]
    assert not unused, f"codes in errors.h the core never answers: {unused}"
