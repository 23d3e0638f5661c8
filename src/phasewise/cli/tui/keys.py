"""Keys for the detail view: the bytes a terminal sends, decoded into ``Key``s
(core/view.py), which the view loop dispatches to the view Store as ``@@KEY`` actions."""

from __future__ import annotations

import codecs

from phasewise.core.view import Key, SpecialKey

__all__ = ["KeyDecoder"]

_CSI = {"A": SpecialKey.UP, "B": SpecialKey.DOWN, "C": SpecialKey.RIGHT,
        "D": SpecialKey.LEFT, "H": SpecialKey.HOME, "F": SpecialKey.END}
_SS3 = {**_CSI, "M": SpecialKey.ENTER}
_TILDE = {"1": SpecialKey.HOME, "7": SpecialKey.HOME, "4": SpecialKey.END,
          "8": SpecialKey.END, "5": SpecialKey.PAGE_UP, "6": SpecialKey.PAGE_DOWN}
_CONTROL = {"\r": SpecialKey.ENTER, "\n": SpecialKey.ENTER, "\t": SpecialKey.TAB,
            "\x7f": SpecialKey.BACKSPACE, "\x08": SpecialKey.BACKSPACE}


class KeyDecoder:
    """Turns the bytes a terminal sends into ``Key``s: UTF-8 characters, control keys
    (``Key(char="c", ctrl=True)`` for Ctrl-C's byte), Alt+key (ESC then the key), and the
    escape sequences of arrows, Home/End and Page Up/Down in both their CSI (``ESC [``)
    and SS3 (``ESC O``) forms, with xterm's modifiers (``ESC [1;5A`` is Ctrl+Up).

    ``feed`` returns the keys complete so far and keeps the start of a sequence cut off
    by the end of a read; a lone ESC may be the start of one, so it waits too, until
    ``flush`` (call it when nothing more has arrived for a moment) makes it Escape.
    """

    def __init__(self) -> None:
        self._text = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def pending(self) -> bool:
        """Whether the start of a sequence waits for more bytes."""
        return bool(self._text)

    def feed(self, data: bytes) -> list[Key]:
        self._text += self._utf8.decode(data)
        return self._parse(final=False)

    def flush(self) -> list[Key]:
        """The keys still waiting, as they are (a lone ESC is Escape)."""
        return self._parse(final=True)

    def _parse(self, *, final: bool) -> list[Key]:
        text, keys, i = self._text, [], 0
        while i < len(text):
            if text[i] != "\x1b":
                keys.append(_single(text[i]))
                i += 1
                continue
            taken = _sequence(text, i, final)
            if taken is None:  # cut short: wait for the rest
                break
            key, i = taken
            if key is not None:
                keys.append(key)
        self._text = text[i:]
        return keys


def _single(char: str, alt: bool = False) -> Key:
    name = _CONTROL.get(char)
    if name is not None:
        return Key(name=name, alt=alt)
    if char < " ":
        return Key(char=chr(ord(char) + 96), ctrl=True, alt=alt)
    return Key(char=char, alt=alt)


def _sequence(text: str, i: int, final: bool) -> tuple[Key | None, int] | None:
    """The key of the escape sequence at ``text[i]`` (an ESC) and where the next one
    starts; None if it may be cut short and more bytes could follow."""
    rest = len(text) - i
    if rest == 1:
        return (Key(name=SpecialKey.ESCAPE), i + 1) if final else None
    kind = text[i + 1]
    if kind == "\x1b":
        return Key(name=SpecialKey.ESCAPE), i + 1
    if kind == "O":
        if rest == 2:
            return (Key(char="O", alt=True), i + 2) if final else None
        return Key(name=_SS3[text[i + 2]]) if text[i + 2] in _SS3 else None, i + 3
    if kind != "[":
        return _single(kind, alt=True), i + 2
    j = i + 2
    while j < len(text) and not ("@" <= text[j] <= "~"):
        j += 1
    if j == len(text):
        if final or j - i > 32:  # never completed: drop what cannot be a key
            return (Key(char="[", alt=True) if rest == 2 else None), len(text)
        return None
    return _csi(text[i + 2 : j], text[j]), j + 1


def _csi(params: str, end: str) -> Key | None:
    fields = params.split(";")
    try:
        modifiers = int(fields[1]) - 1 if len(fields) > 1 else 0
    except ValueError:
        modifiers = 0
    shift, alt, ctrl = bool(modifiers & 1), bool(modifiers & 2), bool(modifiers & 4)
    if end == "~":
        name = _TILDE.get(fields[0])
    elif end == "Z":
        name, shift = SpecialKey.TAB, True
    else:
        name = _CSI.get(end)
    return None if name is None else Key(name=name, shift=shift, alt=alt, ctrl=ctrl)

