"""Text the emitter quotes into C and C++: a model's name (its file's name), its labels, a refusal
naming its tensors. Such text comes from the user's files, so every string the emitted sources
hold goes through c_string and every comment through c_comment: no name can end a literal or a
comment, start a directive on a line of its own, or change meaning through a trigraph.

Both write plain ASCII, so the emitted files are ASCII whatever the names hold.
"""
from __future__ import annotations

_NAMED = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x22: '\\"', 0x5C: "\\\\", 0x3F: "\\?"}
"""Bytes a literal spells by their C escape: the newline, carriage return and tab readably, the quote
and backslash so they do not end or escape, `?` so no `??x` trigraph forms (`\\?` is C89's escape
for exactly that)."""


def _bytes(text: str) -> bytes:
    """The text's UTF-8 bytes; a file name's undecodable bytes (surrogate escapes) as they were."""
    return text.encode("utf-8", "surrogateescape")


def c_string(text: str) -> str:
    """A C/C++ string literal whose value is the text's UTF-8 bytes: printable ASCII as it is,
    anything else as a named escape or a three-digit octal one (`\\033`, `\\303\\251`). Octal
    escapes stop at three digits, so a digit after one stays a digit (a hex escape would swallow it)."""
    out = []
    for b in _bytes(text):
        if b in _NAMED:
            out.append(_NAMED[b])
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def c_comment(text: str) -> str:
    """Text for inside a one-line `/* ... */` comment: printable ASCII as it is, any other byte (a
    newline, a control byte, UTF-8) as `\\xNN`, and `*/` and `/*` split by a backslash, so the text
    neither ends the comment, nor opens a nested one (-Wcomment), nor runs onto a second line."""
    shown = "".join(chr(b) if 0x20 <= b <= 0x7E else f"\\x{b:02X}" for b in _bytes(text))
    return shown.replace("*/", "*\\/").replace("/*", "/\\*")
