"""PostgreSQL roles that separate who writes from who reads: the tables' owner migrates and
creates them; the collector's login (a writer) stores and assembles; a report reader's
login reads, and may write nothing (a real PostgreSQL)."""

import itertools

import msgpack
import pytest

from gateway.central import fleet
from gateway.central.database import Database, Unavailable
from gateway.central.ingest import Rows
from central_parts import segment
from helpers import pbxgw

pytestmark = pytest.mark.central

_NAMES = itertools.count(1)


def config(tmp_path, url: str, name: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[collector]\ndatabase = "{url}"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n')
    return str(path)


def test_the_owner_creates_the_roles_the_collector_writes_and_a_reader_only_reads(tmp_path, postgres_cluster):
    import psycopg

    n = next(_NAMES)
    url = postgres_cluster.create_database(f"roles{n}")
    made = pbxgw("collect", "--migrate-only", "--roles", "--config", config(tmp_path, url, "owner"))
    assert made.returncode == 0, made.stderr
    assert b"granted pbxgw_writer writing and pbxgw_reader reading every table" in made.stdout
    again = pbxgw("collect", "--migrate-only", "--roles", "--config", config(tmp_path, url, "owner"))
    assert again.returncode == 0 and b"created role" not in again.stdout  # (once: the roles are the cluster's)
    writer, reader = f"collector{n}", f"manager{n}"
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {writer} LOGIN IN ROLE pbxgw_writer")
        conn.execute(f"CREATE ROLE {reader} LOGIN IN ROLE pbxgw_reader")
    as_writer, as_reader = (url.replace("pbxgw@", f"{user}@") for user in (writer, reader))

    db = Database.open(as_writer)
    try:
        assert db.migrate() == [] and db.may_write()  # (the collector starts without creating anything)
        rows = Rows()
        rows.add("pbxgw/v1/hq/gw-1/calls", msgpack.packb([segment(1, 1, 1_773_043_200, "201", 0, 5, 60)]), 1)
        rows.add("pbxgw/v1/hq/gw-1/calls", b"\xc1", 1)
        assert db.write(rows).new == 1
    finally:
        db.close()

    db = Database.open(as_reader)
    try:
        assert not db.may_write() and db.fetch("SELECT count(*) FROM events") == [(1,)]
        assert [g["gw"] for g in fleet.fleet(db, 1_773_043_300_000)] == ["gw-1"]
        with pytest.raises(Unavailable, match="permission denied"):
            db.write(rows)
    finally:
        db.close()
    report = pbxgw("report", "--config", config(tmp_path, as_reader, "reader"), "--from", "2026-03-09", "--out",
                   str(tmp_path / "out"), timeout=120)
    assert report.returncode == 0, report.stderr
    assert "Sources whose latest records are not in calls yet" in (tmp_path / "out" / "report.html").read_text()


def test_roles_on_sqlite_say_they_are_postgresqls(tmp_path):
    made = pbxgw("collect", "--migrate-only", "--roles", "--config",
                 config(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", "lite"))
    assert made.returncode != 0 and b"roles are PostgreSQL's" in made.stderr
    alone = pbxgw("collect", "--roles", "--config", config(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", "lite"))
    assert alone.returncode != 0 and b"--roles goes with --migrate-only" in alone.stderr
