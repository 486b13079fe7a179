"""What a site does to a running gateway by mistake or on purpose: a second `pbxgw run`
on the same state directory, `pbxgw parse` on the port the gateway reads, strangers on the
PBX port."""

import json
import os
import signal

from gateway import status
from helpers import pbxgw
from plugins.processes import GatewayProcess, wait_until


def ipo_line(i: int) -> bytes:
    return (f"2026/01/15 10:{i // 60 % 60:02}:{i % 60:02},00:00:10,3,0312{i:06},I,200,200,,0,{i},0,"
            f"E200,Agent,T9001,Line 1.1,0,0\r\n").encode()


def test_a_second_gateway_on_the_same_state_dir_is_refused_and_the_first_goes_on(tmp_path, broker, processes):
    master, slave = os.openpty()
    device = os.ttyname(slave)
    source = {"name": "ipo", "type": "serial", "device": device, "profile": "avaya-ipo"}
    first = GatewayProcess(tmp_path / "gw", broker.url, [source])
    processes.append(first)
    first.start()
    wait_until(lambda: "pbxgw.source.ipo: INFO: reading" in first.log_text(), what="the first gateway to read")
    second = pbxgw("run", "--config", str(first.config))
    assert second.returncode == 78
    assert f"another pbxgw (pid {first.proc.pid}) is using {first.state_dir}" in second.stderr.decode()
    # The first one still owns its status socket, and reads.
    os.write(master, ipo_line(1))
    sock = first.state_dir.parent / "run" / status.SOCKET_NAME
    wait_until(lambda: status.query(sock)["sources"][0]["records"] == 1, what="the first gateway to read on")
    # `pbxgw parse` on the port the gateway holds is refused instead of taking its bytes.
    parse = pbxgw("parse", "--profile", "avaya-ipo", device)
    assert parse.returncode == 1
    assert parse.stderr.decode().strip() == f"pbxgw: {device}: port busy: is the pbxgw service running?"
    assert first.kill(signal.SIGTERM) == 0
    os.close(master)
    os.close(slave)
