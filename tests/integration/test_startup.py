"""`check-config` proves what `run` needs: whatever would stop `run` at start is one line
from both, exit 78 (which the unit does not restart on), never a traceback. Some checks run
as an unprivileged user, as the service does (DynamicUser)."""

import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from gateway import commands
from gateway.cli import main
from gateway.common import mqtt
from gateway.smdr import profiles
from helpers import pbxgw
from plugins.processes import Broker, GatewayProcess, wait_until
from tools.parts import config_text

NOBODY = 65534
# The commands, check-config and status import these (and ssl, sqlite3) when they run; the
# child that becomes nobody could not read the standard library under /root, so they are
# imported here, before the fork.
for module in ("gateway.edge.preflight", "gateway.edge.status", *(f"gateway.commands.{name}" for name in commands.MODULES)):
    importlib.import_module(module)
SOURCE = {"name": "pbx", "type": "file", "path": "/dev/null", "profile": "avaya-ipo", "timezone": "UTC"}


@pytest.fixture
def shared_dir():
    """A directory every user may read (pytest's own are root's only)."""
    path = Path(tempfile.mkdtemp(prefix="pbxgw-startup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def write_config(directory: Path, state_dir: Path, **mqtt) -> Path:
    path = directory / "config.toml"
    path.write_text(config_text(state_dir, "mqtts://localhost:8883" if mqtt.pop("tls", False) else "mqtt://127.0.0.1:1",
                                [SOURCE], mqtt=mqtt))
    path.chmod(0o644)
    return path


def refusal(*args: str) -> str:
    """What `pbxgw ARGS` says when it refuses: exit 78, one line, no traceback."""
    done = pbxgw(*args, timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 78, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


#: The profile library where every user may read it (see :func:`readable_library`).
LIBRARY: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def readable_library():
    """A copy of the profile library that every user may read: the clone the tests run from
    may sit in a directory only root may enter (as `mktemp -d` makes it), where the
    service's user could not read it, as it can an installed pbxgw's."""
    path = Path(tempfile.mkdtemp(prefix="pbxgw-profiles-"))
    shutil.copytree(profiles.LIBRARY, path / "pbx")
    for entry in [path, *path.rglob("*")]:
        entry.chmod(0o755 if entry.is_dir() else 0o644)
    LIBRARY[:] = [path / "pbx"]
    yield
    shutil.rmtree(path)


def as_nobody(*args: str, groups: tuple[int, ...] = (), library: Path | None = None) -> tuple[int, str]:
    """`pbxgw ARGS` run by a process that has become an unprivileged user (uid 65534), in
    ``groups`` besides its own, reading the profile ``library`` (by default, the tests'
    readable copy)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no way back to root, then the command
        try:
            profiles.LIBRARY = library or LIBRARY[0]
            os.close(read)
            os.dup2(write, 2)
            os.setgroups(list(groups))
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            sys.stderr = os.fdopen(2, "w")
            code = main(list(args))
            sys.stderr.flush()
        except BaseException:  # said on the pipe, for the test's message
            import traceback
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(locals().get("code", 70))
    os.close(write)
    with os.fdopen(read) as fh:
        err = fh.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err.strip()


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_ca_file_that_is_missing_or_not_pem_stops_both_commands_in_one_line(tmp_path, command):
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    for ca, said in (("missing.crt", "cannot read {}: No such file or directory"), ("ca.crt", "{} holds no PEM certificate")):
        path = write_config(tmp_path, tmp_path / "state", tls=True, ca_file=str(tmp_path / ca))
        args = ("run", "--config", str(path)) if command == "run" else ("check-config", str(path))
        assert refusal(*args) == f"pbxgw: {path}: mqtt.ca_file: {said.format(tmp_path / ca)}"


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_state_dir_that_cannot_be_created_stops_both_commands_in_one_line(tmp_path, command):
    (tmp_path / "a-file").write_text("")
    path = write_config(tmp_path, tmp_path / "a-file" / "state")
    args = ("run", "--config", str(path)) if command == "run" else ("check-config", str(path))
    assert "gateway.state_dir: cannot create" in refusal(*args) and "is not a directory" in refusal(*args)


def test_check_config_reads_the_password_file_as_the_user_it_runs_as(shared_dir):
    secret = shared_dir / "password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)  # root's, as the documented set-up made it
    path = write_config(shared_dir, shared_dir / "state", username="gw", password_file=str(secret))
    assert pbxgw("check-config", str(path)).returncode == 0  # root may read it
    code, err = as_nobody("check-config", str(path))
    assert code == 78, err
    assert err == f"pbxgw: {path}: mqtt.password_file: cannot read {secret}: Permission denied"


def test_check_config_finds_a_state_dir_the_user_cannot_write(shared_dir):
    path = write_config(shared_dir, shared_dir / "state")
    code, err = as_nobody("check-config", str(path))
    assert code == 78, err
    assert err == f"pbxgw: {path}: gateway.state_dir: cannot write {shared_dir / 'state'} as this user " \
                  f"({shared_dir} does not let this user write in it)"


def test_a_password_over_plain_mqtt_is_warned_about(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    path = write_config(tmp_path, tmp_path / "state", username="gw", password_file=str(secret))
    done = pbxgw("check-config", str(path))
    assert done.returncode == 0
    assert done.stderr.decode().strip() == (f"pbxgw: warning: {path}: mqtt.password_file: the password goes to "
                                            "127.0.0.1:1 in clear text (mqtt://); use mqtts:// so that nobody on "
                                            "the network can read it")
    assert "s3cret" not in done.stdout.decode() + done.stderr.decode()


def test_a_source_without_a_timezone_is_warned_about_naming_the_zone_used(tmp_path):
    path = tmp_path / "config.toml"
    unzoned = {key: value for key, value in SOURCE.items() if key != "timezone"}
    path.write_text(config_text(tmp_path / "state", "mqtt://127.0.0.1:1", [unzoned]))
    done = pbxgw("check-config", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().strip() == (f"pbxgw: warning: {path}: source[1].timezone: not set: the PBX's times are "
                                            "read as UTC; name its zone (e.g. timezone = \"Europe/Paris\") unless the "
                                            "PBX prints UTC")


def test_status_tells_a_user_who_may_not_ask_what_to_do(shared_dir, processes):
    gw = GatewayProcess(shared_dir / "gw", "mqtt://127.0.0.1:1", [SOURCE])
    processes.append(gw)
    gw.start()
    wait_until(lambda: pbxgw("status", "--config", str(gw.config)).returncode == 0, what="the gateway to answer")
    code, err = as_nobody("status", "--config", str(gw.config))
    assert code == 1 and "Traceback" not in err
    assert err == (f"pbxgw: {shared_dir / 'gw' / 'run' / 'status.sock'}: this user may not ask the gateway "
                   "(it answers root and the service's own user); try sudo pbxgw status")


def test_the_password_comes_from_a_systemd_credentials_directory(tmp_path, processes):
    broker = Broker(tmp_path / "broker", anonymous=False, users={"gw": "s3cret"})
    broker.start()
    processes.append(broker)
    credentials = tmp_path / "credentials"  # what systemd makes for LoadCredential=mqtt-password:...
    credentials.mkdir(mode=0o700)
    (credentials / "mqtt-password").write_text("s3cret\n")
    (credentials / "mqtt-password").chmod(0o400)
    gw = GatewayProcess(tmp_path / "gw", broker.url, [SOURCE],
                        mqtt={"username": "gw", "password_file": "$CREDENTIALS_DIRECTORY/mqtt-password"})
    processes.append(gw)
    # By hand, without the directory: check-config cannot check it and says so; run refuses.
    checked = pbxgw("check-config", str(gw.config), timeout=60)
    assert checked.returncode == 0 and "systemd credential 'mqtt-password'" in checked.stderr.decode()
    assert "$CREDENTIALS_DIRECTORY is not set" in refusal("run", "--config", str(gw.config))
    gw.start(env={"CREDENTIALS_DIRECTORY": str(credentials)})
    wait_until(lambda: "connected to 127.0.0.1" in gw.log_text(), what="the broker to accept the password")
    assert "s3cret" not in gw.log_text()


def test_a_secret_readable_by_the_service_group_is_read_by_a_member(shared_dir, monkeypatch):
    """root:GROUP, mode 640, as `chgrp pbxgw; chmod 640` makes it, read by a user in GROUP only.
    (The group is root's here, so that the test needs no group of its own on the machine.)"""
    monkeypatch.setattr(mqtt, "SERVICE_GROUP", "root")
    secret = shared_dir / "password"
    secret.write_text("s3cret\n")
    os.chown(secret, 0, 0)
    secret.chmod(0o640)
    state = shared_dir / "state"
    state.mkdir()
    state.chmod(0o777)  # the service's own, as StateDirectory= makes it
    path = write_config(shared_dir, state, username="gw", password_file=str(secret))
    code, err = as_nobody("check-config", str(path), groups=[0])
    assert code == 0, err
    code, err = as_nobody("check-config", str(path))
    assert code == 78 and "Permission denied" in err


def test_a_state_dir_behind_a_closed_directory_is_one_line(shared_dir):
    closed = shared_dir / "closed"
    closed.mkdir(mode=0o700)  # root's alone
    path = write_config(shared_dir, closed / "pbxgw" / "state")
    code, err = as_nobody("check-config", str(path))
    assert code == 78 and "Traceback" not in err
    assert err == f"pbxgw: {path}: gateway.state_dir: cannot write {closed / 'pbxgw' / 'state'} as this user " \
                  f"({closed} does not let this user write in it)"


def test_a_profile_library_the_user_may_not_read_is_one_line(shared_dir):
    """An install this user may not read (a clone under root's home, run as the service's
    user): one line naming the library, not a traceback."""
    closed = shared_dir / "closed"
    shutil.copytree(profiles.LIBRARY, closed / "pbx")
    closed.chmod(0o700)
    path = write_config(shared_dir, shared_dir / "state")
    code, err = as_nobody("check-config", str(path), library=closed / "pbx")
    assert code == 78 and err == (f"pbxgw: {closed / 'pbx'}: cannot read the profile library: Permission denied "
                                  "(pbxgw's files must be readable to the user it runs as)")
