"""Headset profiles: the bundled ones load and cover the corpus's vendors; mistakes are named."""

import pytest

from gateway.edge.headsets import profiles, recording
from gateway.errors import ProfileError
from helpers import FIXTURES


def test_every_corpus_headset_with_a_telephony_page_has_a_profile_and_negatives_do_not():
    for path in sorted((FIXTURES / "hid").glob("*.hid")):
        rec = recording.load(path)
        matched = profiles.match(rec.vid, rec.pid)
        assert (matched is None) == path.stem.startswith("logitech"), path.stem


def test_jabra_needs_its_requests_acknowledged_the_others_do_not():
    by_name = {p.name: p for p in profiles.load_all()}
    assert by_name["jabra"].led_echo and not any(by_name[n].led_echo for n in ("poly", "epos", "yealink"))


def test_a_product_list_beats_the_whole_vendor(tmp_path):
    (tmp_path / "one.toml").write_text('[headset]\nvendor = "Jabra"\nvid = 0x0b0e\nproducts = [0x0307]\nguard = "1s"\n')
    known = [*profiles.load_all(), profiles.load(tmp_path / "one.toml")]
    assert profiles.match(0x0B0E, 0x0307, known).name == "one"
    assert profiles.match(0x0B0E, 0x2453, known).name == "jabra"


@pytest.mark.parametrize("text, key, message", [
    ('[headset]\nvendor = "X"\nvid = 0\n', "headset.vid", "expected USB IDs"),
    ('[headset]\nvendor = "X"\nvid = 1\ncollection = "other"\n', "headset.collection", "expected one of standard"),
    ('[headset]\nvendor = "X"\nvid = 1\nguard = "soon"\n', "headset.guard", "expected a duration"),
    ('[headset]\nvendor = "X"\nvid = 1\nled_ecco = true\n', "headset.led_ecco", "unknown key"),
])
def test_a_broken_headset_profile_is_one_error_naming_file_and_key(tmp_path, text, key, message):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        profiles.load(path)
    assert info.value.key == key and message in info.value.message
