"""The collector's database, opened beside the collector, for each engine in turn."""

import pytest

from central_parts import Stored
from gateway.central.database import Database


@pytest.fixture
def stored(database_url):
    s = Stored(database_url)
    yield s
    s.close()


@pytest.fixture
def db(database_url):
    """The collector's database, its migrations applied."""
    database = Database.open(database_url)
    database.migrate()
    yield database
    database.close()
