"""The one rule for characters that neither a chat reply nor a Required Actions page may carry (pure, no I/O).

Control characters (NUL, BEL, ESC and the terminal escape sequences it starts, the C1 controls) and the
Unicode bidirectional controls (which reorder what a reader sees: ``DK50 0040 0440 1162 43`` behind U+202E
reads ``2611 0440 0400 05KD 34``) are removed; tab and newline stay (a carriage return becomes a newline).

- :func:`clean_text` removes them and says what it removed: rendered replies (:mod:`.templates`) and a
  person's edits (the approval operator) go through it, and are then checked by :func:`unsafe_characters`
  once more before posting (``validate_reply``).
- :func:`display_text` is the same cleaning, for text shown in a Required Actions request.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

__all__ = ["BIDI_CONTROLS", "clean_text", "describe_characters", "display_text", "unsafe_characters"]

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Arabic letter mark, LRM/RLM, the embeddings and overrides (U+202A-U+202E) and the isolates (U+2066-U+2069)."""

_KEPT = frozenset("\t\n")

# ESC (or the 8-bit CSI) and what follows it: CSI (``ESC [ 31 m``), OSC (``ESC ] ... BEL``) and two-character
# escapes. Removed whole, so an ANSI colour code does not leave "[31m" behind.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]"
)


def _unsafe(char: str) -> bool:
    return char in BIDI_CONTROLS or (unicodedata.category(char) == "Cc" and char not in _KEPT)


def unsafe_characters(text: str) -> list[str]:
    """The characters of ``text`` a reply may not carry, in order (empty when it is clean).

    :param text: the text.
    """
    return [char for char in text if _unsafe(char)]


def describe_characters(chars: list[str]) -> str:
    """``"U+001B ESCAPE x2, U+202E RIGHT-TO-LEFT OVERRIDE"``: which characters, how many of each.

    :param chars: the characters (e.g. :func:`unsafe_characters`' result).
    """
    parts = []
    for char, count in Counter(chars).items():
        name = unicodedata.name(char, "") or _CONTROL_NAMES.get(char, "control character")
        parts.append(f"U+{ord(char):04X} {name}" + (f" x{count}" if count > 1 else ""))
    return ", ".join(parts)


_CONTROL_NAMES = {"\x00": "NULL", "\x07": "BELL", "\x08": "BACKSPACE", "\x1b": "ESCAPE", "\x7f": "DELETE"}


def clean_text(text: str) -> tuple[str, list[str]]:
    """``text`` without control and bidirectional-control characters, and what was removed.

    Terminal escape sequences go whole; ``\\r\\n`` and a lone ``\\r`` become ``\\n``; tab and newline stay.

    :param text: the text.
    """
    removed: list[str] = []

    def drop(match: re.Match[str]) -> str:
        removed.append(match.group(0)[0])
        return ""

    out = _ESCAPE_SEQUENCE.sub(drop, text.replace("\r\n", "\n").replace("\r", "\n"))
    removed += unsafe_characters(out)
    return ("".join(char for char in out if not _unsafe(char)) if removed else out), removed


def display_text(text: str) -> str:
    """``text`` as a Required Actions page may show it: :func:`clean_text`'s result.

    :param text: text from outside (a partner, Debitura, a template).
    """
    return clean_text(str(text))[0]
