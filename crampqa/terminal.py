"""Text bound for a terminal, with its control characters made visible.

File names, ``sources.json`` titles and document text may hold escape sequences (clear
the screen, set the window title, fake colours). Everything crampqa prints for a person
goes through :func:`visible` first; ``--json`` output is left as it is (JSON escapes the
C0 controls itself) and offsets always refer to the unchanged text.
"""

from __future__ import annotations

import re

#: Unicode bidirectional controls (embeddings, overrides, isolates and marks: U+202E
#: RIGHT-TO-LEFT OVERRIDE shows the text after it reversed, so "txt.exe" can read as
#: "exe.txt" and a passage can be made to read otherwise than it is).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
#: C0 controls, DEL and C1 controls (ESC, CSI as 0x9b, OSC as 0x9d, …), and bidi controls.
_CONTROLS = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}]")
#: Controls a terminal shows harmlessly as layout.
_LAYOUT = {"\n", "\t"}


def _picture(char: str) -> str:
    """The visible stand-in for one control character: its Unicode control picture
    (U+2400 block: ␛ for ESC, ␇ for BEL, ␡ for DEL), ``\\x9b``-style for C1, or
    ``\\u202e``-style for a bidi control."""
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    if code > 0xFF:  # a bidi control
        return f"\\u{code:04x}"
    return f"\\x{code:02x}"


def visible(text: str, newlines: bool = True) -> str:
    """``text`` with every control character replaced by a visible stand-in.

    Tabs stay, and newlines too unless ``newlines`` is false (one-line messages);
    a carriage return before a newline (Windows line ends) is dropped.
    """
    if newlines:
        text = text.replace("\r\n", "\n")
    keep = _LAYOUT if newlines else {"\t"}
    return _CONTROLS.sub(lambda m: m.group() if m.group() in keep else _picture(m.group()),
                         text)


def json_for_terminal(text: str) -> str:
    """JSON text with DEL, the C1 controls and the bidi controls written as ``\\uXXXX``
    escapes (json.dumps escapes the C0 ones already): the same JSON value, safe to show."""
    return re.sub(f"[\x7f-\x9f{BIDI_CONTROLS}]", lambda m: f"\\u{ord(m.group()):04x}",
                  text)
