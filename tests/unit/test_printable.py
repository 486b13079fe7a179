"""Names from outside printed on a terminal or in a log: no control character reaches
either (it would clear the screen, or forge a line), and a name is cut to a length."""

import json
import subprocess
import sys

import pytest

from gateway.common.printable import LOG_LIMIT, NAME_LIMIT, json_printable, printable


@pytest.mark.parametrize("text, shown", [
    ("gw-01", "gw-01"),
    ("台北-01", "台北-01"),
    ("\x1b[2J\x1b[Hgw", "\\x1b[2J\\x1b[Hgw"),
    ("pbx\npbxgw.collect: ERROR: forged", "pbx\\npbxgw.collect: ERROR: forged"),
    ("a\rb\x00c\x7f\x9b", "a\\rb\\x00c\\x7f\\x9b"),
    ("abc\u202edcba", "abc\\u202edcba"),
])
def test_control_characters_are_shown_as_their_escapes(text, shown):
    assert printable(text) == shown


def test_a_long_name_is_cut():
    assert printable("x" * 500) == "x" * NAME_LIMIT + "…"


def test_the_daemons_log_keeps_a_forged_line_inside_the_line_that_carries_it():
    code = ("import logging; from gateway.common.printable import log_to_stderr; log_to_stderr(); "
            "logging.getLogger('pbxgw.collect').warning('%s refused', 'gw\\npbxgw.collect: ERROR: forged line'); "
            "logging.getLogger('pbxgw.collect').info('%s', 'y' * 10000)\n"
            "try:\n    1 / 0\nexcept ZeroDivisionError:\n    logging.getLogger('pbxgw.collect').exception('%s', 'z')")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stderr
    lines = err.splitlines()
    assert lines[0] == "pbxgw.collect: WARNING: gw\\npbxgw.collect: ERROR: forged line refused"
    assert lines[1] == "pbxgw.collect: INFO: " + "y" * LOG_LIMIT + "…"
    assert lines[2] == "pbxgw.collect: ERROR: z" and lines[3] == "Traceback (most recent call last):"  # (kept whole)


def test_a_json_line_keeps_its_meaning_with_every_unsafe_character_escaped():
    event = {"raw": "x\x1b[2J\x9by\u202e\x7f", "name": "台北"}
    line = json_printable(json.dumps(event, ensure_ascii=False))
    assert json.loads(line) == event and "台北" in line
    assert not [c for c in line if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or c == "\u202e"]
