"""sinks/jsonl.py: the JSON-lines writer on outputs that fail, recover, or go away."""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Callable

import pytest
import trio
from factories import config_doc, make_config, probe_result, round_summary

from trio_monitor._config import Config
from trio_monitor.sinks.jsonl import RETRY_FIRST, LineLabels, Output, serve_jsonl


class FlakyFile:
    """A raw file whose writes fail with ENOSPC while `full` (after `room` more bytes: a
    torn write). Written from the writer's thread; the test waits with `wait_for`."""

    def __init__(self) -> None:
        self.data = b""
        self.full = False
        self.room = 0
        self.failures = 0
        self._changed = trio.Event()

    def write(self, chunk: bytes) -> int:
        try:
            if self.full:
                if not self.room:
                    self.failures += 1
                    raise OSError(errno.ENOSPC, "No space left on device")
                chunk, self.room = chunk[: self.room], 0
            self.data += chunk
            return len(chunk)
        finally:
            trio.from_thread.run_sync(self._changed.set)

    def flush(self) -> None:
        pass

    async def wait_for(self, predicate: Callable[[FlakyFile], bool]) -> None:
        with trio.fail_after(10):
            while not predicate(self):
                self._changed = trio.Event()
                await self._changed.wait()


def _parsed(data: bytes) -> tuple[list[int], int]:
    """-> (the rounds of the records written, how many lines are not JSON)."""
    rounds, bad = [], 0
    for line in data.decode().splitlines():
        try:
            rounds.append(json.loads(line)["round"])
        except ValueError:
            bad += 1
    return rounds, bad


@pytest.fixture
def short_pauses(monkeypatch):
    monkeypatch.setattr("trio_monitor.sinks.jsonl.RETRY_FIRST", 0.01)
    monkeypatch.setattr("trio_monitor.sinks.jsonl.RETRY_MAX", 0.02)


async def test_a_full_disk_loses_lines_counted_and_writing_resumes(short_pauses, caplog):
    caplog.set_level(logging.INFO, "trio_monitor")
    file = FlakyFile()
    out = Output(file, "out.jsonl")
    stopped = []
    send, receive = trio.open_memory_channel(100)
    async with trio.open_nursery() as nursery, send:
        await nursery.start(serve_jsonl, receive, out, lambda: stopped.append(True))
        await send.send(probe_result(round=1))
        await file.wait_for(lambda f: f.data.endswith(b"\n"))
        file.full = True
        for n in range(2, 12):  # each line fails: lost, and tried again after a pause
            await send.send(probe_result(round=n))
            await file.wait_for(lambda f, n=n: f.failures >= n - 1)
        file.full = False
        await send.send(probe_result(round=12))
        await file.wait_for(lambda f: b'"round":12' in f.data)
    assert not stopped  # probing would have gone on
    rounds, bad = _parsed(file.data)
    assert (rounds, bad, out.lost) == ([1, 12], 0, 10)
    assert caplog.text.count("cannot write output out.jsonl: No space left on device") == 1
    assert "output out.jsonl written again (10 lines lost so far)" in caplog.text


async def test_the_error_is_logged_again_after_a_minute(short_pauses, caplog, monkeypatch):
    monkeypatch.setattr("trio_monitor.sinks.jsonl.LOG_EVERY", 0.0)
    file = FlakyFile()
    file.full = True
    send, receive = trio.open_memory_channel(100)
    async with trio.open_nursery() as nursery, send:
        await nursery.start(serve_jsonl, receive, Output(file, "out.jsonl"), lambda: None)
        for n in range(3):
            await send.send(probe_result(round=n))
            await file.wait_for(lambda f, n=n: f.failures > n)
    assert caplog.text.count("cannot write output") == 3


async def test_a_torn_line_stands_alone(short_pauses):
    file = FlakyFile()
    out = Output(file, "out.jsonl")
    send, receive = trio.open_memory_channel(100)
    async with trio.open_nursery() as nursery, send:
        await nursery.start(serve_jsonl, receive, out, lambda: None)
        file.full, file.room = True, 10  # the first line gets 10 bytes in, then the disk is full
        await send.send(probe_result(round=1))
        await file.wait_for(lambda f: f.failures == 1)
        file.full = False
        await send.send(probe_result(round=2))
        await file.wait_for(lambda f: f.data.endswith(b"\n"))
    rounds, bad = _parsed(file.data)
    assert (rounds, bad, out.lost) == ([2], 1, 1)


async def test_stopping_does_not_wait_for_a_failing_output():
    file = FlakyFile()
    file.full = True
    out = Output(file, "out.jsonl")
    send, receive = trio.open_memory_channel(100)
    with trio.fail_after(RETRY_FIRST * 4):  # no pause between attempts once closed
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_jsonl, receive, out, lambda: None)
            for n in range(3):
                send.send_nowait(probe_result(round=n))
            await send.aclose()
    assert out.lost == 3


@pytest.mark.parametrize("error", [BrokenPipeError, ValueError])
async def test_a_reader_that_goes_away_stops(error, caplog):
    class Gone(FlakyFile):
        def write(self, chunk: bytes) -> int:
            raise error()

    stopped = []
    send, receive = trio.open_memory_channel(10)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            serve_jsonl, receive, Output(Gone(), "stdout"), lambda: stopped.append(1)
        )
        await send.send(probe_result())
    assert stopped == [1]
    assert "output closed by its reader; stopping" in caplog.text


def test_a_file_output_appends_and_closes_without_error(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"old\n")
    out = Output.file(path)
    out.write_lines([b"new\n"])
    out.close()
    assert path.read_bytes() == b"old\nnew\n"


def test_reopen_writes_the_next_lines_to_a_new_file_at_the_path(tmp_path, caplog):
    caplog.set_level(logging.INFO, "trio_monitor")
    path, rotated = tmp_path / "out.jsonl", tmp_path / "out.jsonl.1"
    out = Output.file(path)
    out.write_lines([b"1\n"])
    path.rename(rotated)
    out.write_lines([b"2\n"])  # until asked, into the file it has open
    out.reopen()
    out.write_lines([b"3\n", b"4\n"])
    out.close()
    assert (rotated.read_bytes(), path.read_bytes()) == (b"1\n2\n", b"3\n4\n")
    assert f"reopened output {path}" in caplog.text


def test_a_file_that_cannot_be_reopened_keeps_the_old_one(tmp_path, caplog):
    path = tmp_path / "logs" / "out.jsonl"
    path.parent.mkdir()
    out = Output.file(path)
    rotated = path.rename(tmp_path / "out.jsonl.1")
    path.parent.rmdir()
    out.reopen()
    out.write_lines([b"1\n"])
    out.close()
    assert rotated.read_bytes() == b"1\n"
    assert f"cannot reopen output {path}: No such file or directory" in caplog.text


def test_a_stream_is_never_reopened():
    file = FlakyFile()
    out = Output(file, "stdout")
    out.reopen()
    trio.run(trio.to_thread.run_sync, out.write_lines, [b"1\n"])
    assert file.data == b"1\n"


async def test_probe_lines_carry_their_targets_labels_from_the_config():
    def config(team: str) -> Config:
        return make_config(
            config_doc(
                {"url": "http://api.test/", "name": "api", "labels": {"team": team}},
                {"url": "http://web.test/", "name": "web"},
            )
        )

    old = config("payments")
    labels = LineLabels(old)
    file = FlakyFile()
    send, receive = trio.open_memory_channel(100)
    async with trio.open_nursery() as nursery, send:
        await nursery.start(serve_jsonl, receive, Output(file, "out.jsonl"), lambda: None, labels)
        for record in (probe_result("api"), probe_result("web"), round_summary()):
            await send.send(record)
        await file.wait_for(lambda f: f.data.count(b"\n") == 3)
        await labels.reconfigure(old, config("billing"))  # a reload
        await send.send(probe_result("api"))
        await file.wait_for(lambda f: f.data.count(b"\n") == 4)
    lines = [json.loads(line) for line in file.data.decode().splitlines()]
    assert lines[0]["labels"] == {"team": "payments"}
    assert list(lines[0])[-1] == "labels"  # added after the record's own fields
    assert lines[1]["labels"] is None  # present, null: absent values are never missing
    assert "labels" not in lines[2]  # a round line has none
    assert lines[3]["labels"] == {"team": "billing"}


def test_a_batch_cut_short_counts_the_lines_not_wholly_written():
    """Lines go out in one write per batch; a write that stops inside the second of
    three lines keeps the first, loses two, and the next batch starts a line afresh."""
    file = FlakyFile()
    out = Output(file, "out.jsonl")
    file.full, file.room = True, len(b"one\ntw")
    with pytest.raises(OSError, match="No space left on device"):
        trio.run(trio.to_thread.run_sync, out.write_lines, [b"one\n", b"two\n", b"three\n"])
    assert out.lost == 2
    file.full = False
    trio.run(trio.to_thread.run_sync, out.write_lines, [b"four\n"])
    assert file.data == b"one\ntw\nfour\n"
