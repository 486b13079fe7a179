"""The collector's database, opened beside the collector, for each engine in turn."""

import pytest

from central_parts import Stored


@pytest.fixture
def stored(database_url):
    s = Stored(database_url)
    yield s
    s.close()
