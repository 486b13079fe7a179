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
