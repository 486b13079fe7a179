"""The site register: a gateway belongs to the site the collector's config gives it, else
where it was first heard; its messages under another site are refused."""

import pytest

from gateway.central.register import SiteRegister

pytestmark = pytest.mark.central


def test_a_gateway_belongs_where_it_was_first_heard_and_is_refused_elsewhere():
    register = SiteRegister({})
    register.heard([("gw-01", "paris")])
    assert register.refusal("pbxgw/v1/paris/gw-01/calls") == ""
    reason = register.refusal("pbxgw/v1/lyon/gw-01/calls")
    assert reason.startswith("gateway gw-01 belongs to site paris (where it was first heard), not lyon")
    assert register.refusal("pbxgw/v1/lyon/gw-02/status") == ""  # new: registered under lyon now
    assert "belongs to site lyon" in register.refusal("pbxgw/v1/paris/gw-02/calls")


def test_the_config_says_where_a_gateway_belongs_over_where_it_was_heard():
    register = SiteRegister({"gw-01": "lyon"})
    register.heard([("gw-01", "paris")])
    assert register.refusal("pbxgw/v1/lyon/gw-01/calls") == ""
    assert "belongs to site lyon (collector.toml [gateways]), not paris" in register.refusal("pbxgw/v1/paris/gw-01/calls")


def test_commands_and_topics_no_gateway_sent_are_not_the_registers():
    register = SiteRegister({"gw-01": "lyon"})
    assert register.refusal("pbxgw/v1/paris/gw-01/cmd/replay") == ""
    assert register.refusal("somewhere/else") == ""


def test_a_refusal_is_said_once_per_gateway_and_site():
    register = SiteRegister({"gw-01": "lyon"})
    assert register.first_refusal("pbxgw/v1/paris/gw-01/calls") is True
    assert register.first_refusal("pbxgw/v1/paris/gw-01/status") is False
    assert register.first_refusal("pbxgw/v1/nice/gw-01/calls") is True


def test_the_acl_docs_show_is_what_broker_acl_writes():
    import re

    from gateway.central.broker_acl import mosquitto_acl
    from helpers import ROOT

    shown = re.search(r"```\n(# pbxgw broker-acl.*?)```", (ROOT / "docs" / "events.md").read_text(), re.S)[1]
    assert shown == mosquitto_acl("collector", [("gw-01", "hq")])


def test_broker_acl_needs_the_collectors_user_and_the_register(tmp_path):
    from helpers import pbxgw

    config = tmp_path / "collector.toml"
    config.write_text('[gateways]\ngw-01 = "hq"\n')
    made = pbxgw("broker-acl", "--config", str(config))
    assert made.returncode == 78 and b"mqtt.username: expected the collector's user name" in made.stderr
    config.write_text('[mqtt]\nusername = "collector"\n')
    made = pbxgw("broker-acl", "--config", str(config))
    assert made.returncode == 78 and b"gateways: expected each gateway's site" in made.stderr
