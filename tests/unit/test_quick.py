"""The quick tests rule out only texts a pattern cannot match (they may let any through)."""

import re

from hypothesis import given
from hypothesis import strategies as st

from gateway.smdr import profiles
from gateway.smdr.quick import quick_test

#: Every rule pattern and skip pattern of the shipped profiles, and a few shapes of note.
PATTERNS = sorted({p.pattern for profile in profiles.load_all() for rule in profile.rules for _, p in rule.when}
                  | {r"(?P<t>T\d+)", r"(?:IN|OUT)(?P<x>.*)", r"x{3,}y", r"(?i)abc", r"a|", r"[^A]B"})


def ruled_out(pattern: re.Pattern, text: str) -> bool:
    first, required = quick_test(pattern)
    data = text.encode()
    return (first is not None and (not data or first[data[0]] == 0)) or (bool(required) and required not in data)


def test_what_the_tests_read_from_a_pattern():
    first, required = quick_test(re.compile(r"(?:IN|OUT)(?P<x>.*)"))
    assert [chr(b) for b in range(256) if first[b]] == ["I", "O"] and required == b""
    assert quick_test(re.compile(r"ab+c"))[1] == b"ab"  # a repeat counts its minimum, and ends the run
    assert quick_test(re.compile(r"(?i)abc")) == (None, b"")  # case-insensitive: no quick test
    assert quick_test(re.compile(r"a|"))[0] is None  # may match empty: no first-byte test


@given(st.sampled_from(PATTERNS), st.text(alphabet="ABCINOUTabcxyz0123456789 -*", max_size=12))
def test_a_text_ruled_out_never_matches(source, text):
    pattern = re.compile(source)
    if ruled_out(pattern, text):
        assert pattern.fullmatch(text) is None, (source, text)


def test_the_shipped_patterns_match_what_they_are_meant_to_despite_the_tests():
    """A match found by the regex is never ruled out (the examples: the patterns' own texts)."""
    for source in PATTERNS:
        pattern = re.compile(source)
        for text in ("IN", "OUT", "T12", "xxxy", "ABC", "aB", "a", "OUTx"):
            if pattern.fullmatch(text):
                assert not ruled_out(pattern, text), (source, text)
