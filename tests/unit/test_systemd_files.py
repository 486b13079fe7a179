"""The udev rule grants exactly the vendors the headset profiles cover, to the sysusers group."""

import re

from gateway.edge.headsets import profiles
from helpers import ROOT


def test_the_udev_rule_lists_the_headset_profiles_vendors_for_the_sysusers_group():
    rule = (ROOT / "systemd" / "70-pbxgw-headsets.rules").read_text()
    granted = re.findall(r'^ATTRS\{idVendor\}=="([0-9a-f]{4})", GROUP="(\w+)", MODE="0660"$', rule, re.MULTILINE)
    assert sorted(vid for vid, _ in granted) == sorted(f"{p.vid:04x}" for p in profiles.load_all())
    groups = re.findall(r"^g (\S+)", (ROOT / "systemd" / "pbxgw.sysusers.conf").read_text(), re.MULTILINE)
    assert {group for _, group in granted} == set(groups) == {"pbxgw"}
