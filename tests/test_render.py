"""slimmer.render's shared pieces: ``safe`` makes any string from an image visible and inert for
a terminal while normal text stays readable, ``clip`` applies it, and JSON stays exact."""

from __future__ import annotations

import json

import pytest

from slimmer.render import clip, clip_left, safe
from slimmer.render.json import dumps


@pytest.mark.parametrize("text, shown", [
    pytest.param("evil\x1b]0;PWNED\x07", r"evil\x1b]0;PWNED\x07", id="an OSC title sequence"),
    pytest.param("\x1b[2J\x1b[H", r"\x1b[2J\x1b[H", id="CSI clear screen and home"),
    pytest.param("red\u009b31m", r"red\x9b31m", id="a C1 CSI"),
    pytest.param("\u0085next", r"\x85next", id="a C1 next-line"),
    pytest.param("ok\roverwritten", r"ok\roverwritten", id="a carriage return"),
    pytest.param("two\nlines\ttab", r"two\nlines\ttab", id="a line feed and a tab"),
    pytest.param("nul\x00bell\x07del\x7f", r"nul\x00bell\x07del\x7f", id="NUL, BEL and DEL"),
    pytest.param("caf\udce9", r"caf\xe9", id="a byte that was not UTF-8"),
    pytest.param("\ud800 \udfff", r"\ud800 \udfff", id="lone surrogates"),
    pytest.param("abc\u202edcba", r"abc\u202edcba", id="a right-to-left override"),
    pytest.param("x\u2066y\u2069\u2028z", r"x\u2066y\u2069\u2028z", id="bidi isolates and a line separator"),
])
def test_safe_shows_what_a_terminal_would_act_on_as_escapes(text, shown):
    """Control characters, bidi controls and surrogates come out as visible escapes."""
    assert safe(text) == shown
    assert safe(text).isprintable()
    safe(text).encode("utf-8")  # always encodable


@pytest.mark.parametrize("text", [
    pytest.param("/usr/lib/python3.11/site-packages", id="a path"),
    pytest.param("café résumé naïve", id="accented letters"),
    pytest.param("日本語のファイル", id="Japanese"),
    pytest.param("emoji 🎉 and a family 👨‍👩‍👧", id="emoji with zero-width joiners"),
    pytest.param("back\\slash and 'quotes' \"here\"", id="backslashes and quotes"),
])
def test_safe_keeps_normal_unicode_text_as_it_is(text):
    """Readable text, in any script, is left untouched."""
    assert safe(text) == text


def test_safe_keeps_line_feeds_of_a_whole_report_when_asked():
    """With newlines=True a report keeps its lines while every other control is escaped."""
    assert safe("line 1\nline\x1b[2J 2\r\n", newlines=True) == "line 1\nline\\x1b[2J 2\\r\n"


def test_clip_makes_safe_before_it_measures():
    """clip and clip_left escape first, so the width they cut to is the width shown."""
    assert clip("a\x1b[2Jb", 20) == r"a\x1b[2Jb"
    assert clip("x" * 30 + "\x1b", 10) == "x" * 9 + "…"
    assert clip_left("/very/long/path/evil\x1b]0;x\x07", 12) == "…" + r"/very/long/path/evil\x1b]0;x\x07"[-11:]


def test_json_keeps_strings_from_the_image_exact_in_ascii():
    """dumps escapes control characters and surrogates, and reading it back gives the very same strings."""
    strings = ["evil\x1b]0;PWNED\x07", "caf\udce9", "\ud800", "ok\rno", "日本"]
    text = dumps({"strings": strings})
    assert text.isascii() and "\x1b" not in text
    assert json.loads(text) == {"strings": strings}
    assert safe(text, newlines=True) == text  # the terminal guard leaves JSON as it is
