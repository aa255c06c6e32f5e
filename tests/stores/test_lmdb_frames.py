"""
The frames between an LMDB writer process and its parent, on pipes an event
loop made non-blocking (uvloop's ``add_reader`` does, for good): reads and
writes still wait until they are done, and the writer process keeps serving.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from zerfoo_cloud.metering import TokenMeter
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.lmdb._frames import LENGTH, read_frame, write_all

#: More than a pipe holds (64 KiB on Linux): the writer must wait for room.
_BIG = 1 << 20


def test_read_frame_waits_on_a_non_blocking_pipe() -> None:
    """A frame that arrives in two parts, later, is read whole."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    data = b"\x80\x05\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x01x\x94."
    frame = LENGTH.pack(len(data)) + data

    def send() -> None:
        time.sleep(0.05)
        os.write(write_end, frame[:3])
        time.sleep(0.05)
        os.write(write_end, frame[3:])

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert read_frame(read_end) == "x"
    finally:
        sender.join()
        os.close(read_end)
        os.close(write_end)


def test_write_all_waits_for_room_on_a_non_blocking_pipe() -> None:
    """A write larger than the pipe holds goes out whole as it is drained."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    received = bytearray()

    def drain() -> None:
        while len(received) < _BIG:
            time.sleep(0.001)
            received.extend(os.read(read_end, 65536))

    drainer = threading.Thread(target=drain)
    drainer.start()
    try:
        write_all(write_end, bytes(range(256)) * (_BIG // 256))
        drainer.join(30)
        assert bytes(received) == bytes(range(256)) * (_BIG // 256)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_the_writer_process_serves_over_a_pipe_made_non_blocking(
    tmp_path: Path,
) -> None:
    """Calls from the writer thread still get their answers, from the same
    writer process, once the pipe from it is non-blocking."""
    stores = LMDBStores.open(tmp_path / "db", writer_process=True)
    meter = TokenMeter(stores.billing)
    try:
        meter.record_request("acme", 1, 2, model="m", request_id="r-0")
        meter.flush(timeout=30)
        process = stores.writer_process
        assert process is not None
        pid = process.pid
        assert pid is not None
        os.set_blocking(process._from_child, False)  # as uvloop leaves it
        for number in range(1, 20):
            meter.record_request("acme", 1, 2, model="m", request_id=f"r-{number}")
            meter.flush(timeout=30)
        assert process.pid == pid
        assert meter.error is None
    finally:
        meter.close()
        stores.close()
