"""The collector's second process: batches of messages in, their rows out.

Reading messages into rows (decoding, checking, making tuples) is Python work. In the
collector's own process it would take turns with the database calls under the GIL, and a
database call that lets go of the GIL (SQLite does, for each row) waits long to get it
back from a busy thread; in a process of its own it runs beside them, on another core:
one batch is read while the one before it is written.

The process is ``python -m gateway.central.reader``: a fresh interpreter that imports only
what reading takes. A request is a pickle of the messages on its stdin; the answer, on its
stdout, is the rows in pieces of at most ``PIECE`` rows, each in ``marshal``'s format after
its length, then an empty piece: marshal writes plain tuples several times faster than
pickle (the reader's time bounds the collector's rate), both ends are the same
interpreter, and small pieces keep either process from holding a batch twice over in
large buffers, which the allocator would keep. It reads until its stdin ends, when the collector closes it or dies,
and then ends too. Signals are the collector's to act on: systemd's SIGTERM (sent to each
process of the unit) and a terminal's ^C (to the whole process group) are ignored here,
and the collector ends this process itself once what it read is stored.
"""

from __future__ import annotations

import marshal
import pickle
import signal
import struct
import subprocess
import sys
from dataclasses import fields

from gateway.central.ingest import Reply, Rows, rows_of


class ReaderGone(Exception):
    """The reader process ended (killed, out of memory): start another."""


class Reader:
    """The reader process, started with the first request and again after it ended; one
    request at a time (from one thread)."""

    def __init__(self):
        self._process: subprocess.Popen | None = None

    def rows(self, messages: list[tuple[str, bytes, int]]) -> Rows:
        """The rows of messages (``(topic, payload, received_at)``); blocks.

        :raises ReaderGone: the process could not be started, or ended.
        """
        try:
            if self._process is None:
                self._process = subprocess.Popen([sys.executable, "-m", "gateway.central.reader"],
                                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            pickle.dump(messages, self._process.stdin, pickle.HIGHEST_PROTOCOL)
            self._process.stdin.flush()
            return _receive_rows(self._process.stdout)
        except (EOFError, OSError, ValueError) as exc:
            if self._process is None:
                raise ReaderGone(f"cannot start the process reading messages into rows: {exc}") from None
            code = self.close()
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            raise ReaderGone(f"the process reading messages into rows ended ({how})") from None

    def close(self) -> int:
        """End the process, if started (its stdin ends), and wait for it; its exit status."""
        process, self._process = self._process, None
        if process is None:
            return 0
        try:
            process.stdin.close()
        except OSError:  # (it had ended: what was left unwritten could not be)
            pass
        try:
            code = process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        process.stdout.close()
        return code


#: Most rows in one piece of an answer.
PIECE = 100
_LENGTH = struct.Struct("<I")
_LISTS = [f.name for f in fields(Rows) if f.name != "heard"]


def _send_rows(stream, rows: Rows) -> None:
    """``rows`` as pieces ``(field, rows)`` and then ``heard``, an empty piece last."""
    pieces = [(name, part[i:i + PIECE]) for name in _LISTS if (part := getattr(rows, name))
              for i in range(0, len(part), PIECE)]
    pieces = [(name, [tuple(r) for r in part] if name == "replies" else part) for name, part in pieces]
    for piece in (*pieces, ("heard", rows.heard)):
        data = marshal.dumps(piece)
        stream.write(_LENGTH.pack(len(data)) + data)
    stream.write(_LENGTH.pack(0))
    stream.flush()


def _receive_rows(stream) -> Rows:
    """The rows :func:`_send_rows` wrote. :raises EOFError: the stream ended first."""
    rows = Rows()
    while True:
        head = stream.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            raise EOFError("the stream ended")
        size, = _LENGTH.unpack(head)
        if not size:
            return rows
        data = stream.read(size)
        if len(data) < size:
            raise EOFError("the stream ended within a piece")
        name, part = marshal.loads(data)
        if name == "heard":
            rows.heard = part
        elif name == "replies":  # (marshal carries plain tuples)
            rows.replies.extend(Reply(*r) for r in part)
        else:
            getattr(rows, name).extend(part)


def serve(requests, answers) -> None:
    """Answer each request (a pickle from ``requests``) with its rows (on ``answers``)
    until the requests end."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            _send_rows(answers, rows_of(pickle.load(requests)))
    except (EOFError, BrokenPipeError, pickle.UnpicklingError):  # the collector closed its end, or died
        pass


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
