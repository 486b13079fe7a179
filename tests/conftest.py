"""Shared fixtures."""

import pytest

from gateway import profiles


@pytest.fixture(params=profiles.bundled_names())
def profile(request):
    """Each bundled PBX profile in turn."""
    return profiles.find(request.param)


pytest_plugins = ["plugins.processes"]
