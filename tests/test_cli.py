"""The real `trio-monitor` console script, run in subprocesses against the loopback test server.

`run_cli` runs a command to completion; `start_monitor` starts `trio-monitor run` and
collects its stdout and stderr line by line as they come, so a test can wait for a
line (never sleep) before it sends a signal or checks what came after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio
from factories import config_doc, write_config
from servers import TestServer, closed_port

from trio_monitor import load_config

pytestmark = pytest.mark.subprocess  # every test here runs the console script

WAIT = 15.0  # seconds any single wait may take before the test fails instead of hanging

PROBE_FIELDS = ("ts", "target", "url", "ok", "status", "latency_ms", "error", "attempts")
ROUND_FIELDS = ("round", "targets", "ok", "failed", "duration_ms")
PROBE_KEYS = {
    "schema",
    "type",
    "ts",
    "target",
    "url",
    "ok",
    "status",
    "latency_ms",
    "error",
    "attempts",
    "round",
    "error_detail",
    "ttfb_ms",
    "bytes",
    "truncated",
    "content_hash",
    "content_changed",
    "slow",
    "final_url",
    "remote_addr",
    "kind",
    "confirm",
    "phases_ms",
    "tls",
    "addresses",
    "conditions",
    "dns",
    "received",
    "icmp",
    "push",
    "browser",
    "labels",
}
ROUND_KEYS = {
    "schema",
    "type",
    "ts",
    "round",
    "targets",
    "ok",
    "failed",
    "duration_ms",
    "skipped",
    "confirm",
    "concurrency",
    "dropped",
    "unstored",
    "drops",
    "given_up",
    "lag_p50_ms",
    "lag_max_ms",
    "sent",
}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
USAGE_LINE = re.compile(r"trio-monitor: .+ \(see: trio-monitor( \w+)? --help\)")


def _find_executable() -> str:
    beside = Path(sys.executable).with_name("trio-monitor")
    if beside.is_file():
        return str(beside)
    found = shutil.which("trio-monitor")
    if found is None:
        pytest.fail("the trio-monitor console script is not installed (pip install -e .)")
    return found


EXE = _find_executable()


# --- helpers ---------------------------------------------------------------------


def cli_config(*targets: dict, alerts: dict | None = None, **monitor) -> dict:
    """A config with these [[targets]], [alerts] and [monitor] keys; loopback URLs only."""
    monitor = {"interval": "200ms", "timeout": "5s", "retries": 0, **monitor}
    return config_doc(*targets, monitor=monitor, alerts=alerts or {})


def parse_lines(lines: list[str]) -> list[dict]:
    """Every line is one JSON record of schema 1 and a known type."""
    records = []
    for line in lines:
        record = json.loads(line)
        assert record["schema"] == 1, line
        assert record["type"] in ("probe", "round", "alert"), line
        records.append(record)
    return records


def check_probe(record: dict) -> None:
    assert set(PROBE_FIELDS) <= record.keys()
    assert TIMESTAMP.fullmatch(record["ts"])
    assert isinstance(record["ok"], bool)
    assert isinstance(record["attempts"], int)
    assert record["attempts"] >= 1
    if record["ok"]:
        assert record["error"] is None
        assert isinstance(record["status"], int)
        assert isinstance(record["latency_ms"], int | float)
    else:
        assert isinstance(record["error"], str)


def check_round(record: dict) -> None:
    assert set(ROUND_FIELDS) <= record.keys()
    assert TIMESTAMP.fullmatch(record["ts"])
    assert record["ok"] + record["failed"] == record["targets"]
    assert record["duration_ms"] >= 0


def assert_no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text
        assert "BrokenPipeError" not in text, text
        assert "Exception ignored" not in text, text


@attrs.frozen
class Done:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


async def run_cli(*args: str, cwd: Path, stdin: bytes = b"") -> Done:
    """Run `trio-monitor ARGS` to completion (inside trio, so the test server keeps serving)."""
    with trio.fail_after(WAIT):
        proc = await trio.run_process(
            [EXE, *args],
            cwd=cwd,
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    done = Done(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    assert_no_traceback(done.stdout, done.stderr)
    return done


@attrs.define
class Stream:
    lines: list[str] = attrs.Factory(list)  # complete lines so far
    tail: bytes = b""  # bytes after the last newline, once the stream ended
    ended: bool = False


class Running:
    """A `trio-monitor` process whose stdout and stderr are being collected line by line."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.out = Stream()
        self.err = Stream()
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _collect(self, source: trio.abc.ReceiveStream, into: Stream) -> None:
        buffer = b""
        try:
            async for chunk in source:
                *complete, buffer = (buffer + chunk).split(b"\n")
                into.lines.extend(line.decode() for line in complete)
                self._notify()
        except trio.ClosedResourceError:  # close_stdout() closed our end
            pass
        into.tail, into.ended = buffer, True
        self._notify()

    def _diagnostics(self) -> str:
        return "stderr so far:\n" + "\n".join(self.err.lines[-20:])

    async def wait_line(
        self, stream: Stream, matches: Callable[[str], bool], start: int = 0
    ) -> int:
        """Wait for a line at index >= start that matches. -> its index."""
        index = start
        try:
            with trio.fail_after(WAIT):
                while True:
                    while index < len(stream.lines):
                        if matches(stream.lines[index]):
                            return index
                        index += 1
                    if stream.ended:
                        raise AssertionError(
                            f"stream ended without that line; {self._diagnostics()}"
                        )
                    await self._changed.wait()
        except trio.TooSlowError:
            raise AssertionError(f"no such line within {WAIT}s; {self._diagnostics()}") from None

    async def wait_log(self, text: str) -> str:
        return self.err.lines[await self.wait_line(self.err, lambda line: text in line)]

    async def wait_record(
        self, matches: Callable[[dict], bool], start: int = 0
    ) -> tuple[int, dict]:
        """Wait for a JSON line on stdout that matches. -> (index, record)."""
        index = await self.wait_line(self.out, lambda line: matches(json.loads(line)), start)
        return index, json.loads(self.out.lines[index])

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def close_stdout(self) -> None:
        """Be a reader that goes away: close our end of the stdout pipe."""
        await self.process.stdout.aclose()

    async def wait_exit(self, limit: float = WAIT) -> int:
        """Wait for the process to exit and both streams to end. -> exit code."""
        try:
            with trio.fail_after(limit):
                code = await self.process.wait()
                while not (self.out.ended and self.err.ended):
                    await self._changed.wait()
        except trio.TooSlowError:
            raise AssertionError(f"still running after {limit}s; {self._diagnostics()}") from None
        assert_no_traceback(*self.out.lines, *self.err.lines, self.out.tail.decode())
        return code

    def records(self) -> list[dict]:
        return parse_lines(self.out.lines)


@asynccontextmanager
async def start_monitor(config: Path, *args: str) -> AsyncIterator[Running]:
    """Start `trio-monitor run -c CONFIG ARGS` and wait until it is monitoring."""
    process = await trio.lowlevel.open_process(
        [EXE, "run", "-c", str(config), *args],
        cwd=config.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with trio.open_nursery() as nursery:
            running = Running(process)
            nursery.start_soon(running._collect, process.stdout, running.out)
            nursery.start_soon(running._collect, process.stderr, running.err)
            try:
                # logged once the signal handlers are installed: signals are safe from here on
                await running.wait_log("monitoring ")
                yield running
            finally:
                if process.returncode is None:
                    process.kill()
    finally:
        with trio.CancelScope(shield=True):
            await process.wait()
            for pipe in (process.stdout, process.stderr):
                await pipe.aclose()


def ok_target(server: TestServer, name: str = "ok", path: str = "/ok") -> dict:
    return {"name": name, "url": server.url(path)}


def is_probe(target: str) -> Callable[[dict], bool]:
    return lambda r: r["type"] == "probe" and r["target"] == target


def is_round(r: dict) -> bool:
    return r["type"] == "round"


# --- validate and usage ----------------------------------------------------------


async def test_validate_ok(tmp_path, server):
    write_config(tmp_path, cli_config(ok_target(server), ok_target(server, "b")))
    done = await run_cli("validate", "-c", "m.toml", cwd=tmp_path)
    assert done == Done(0, "m.toml: ok, 2 targets\n", "")


async def test_validate_reports_every_problem_on_one_line_each(tmp_path):
    (tmp_path / "m.toml").write_text(
        """
[monitor]
interval = 5
bogus = true

[[targets]]
url = "http://127.0.0.1:1/"
timeout = "soon"
verify_tls = "yes"
""",
        encoding="utf-8",
    )
    done = await run_cli("validate", "-c", "m.toml", cwd=tmp_path)
    assert (done.code, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        'm.toml: monitor.interval: expected a duration string like "500ms", "10s", "5m", got 5',
        "m.toml: monitor.bogus: unknown key",
        'm.toml: targets[0].timeout: invalid duration \'soon\' (use e.g. "500ms", "10s", "5m", "1h30m")',
        "m.toml: targets[0].verify_tls: expected true or false, got 'yes'",
    ]


async def test_validate_refuses_what_http_cannot_carry(tmp_path, server):
    target = ok_target(server) | {"headers": {"X-Team": "€"}}
    write_config(tmp_path, cli_config(target, user_agent="bot\n"))
    done = await run_cli("validate", "-c", "m.toml", cwd=tmp_path)
    assert (done.code, done.stdout) == (2, "")
    assert [line.partition(" cannot carry ")[0] for line in done.stderr.splitlines()] == [
        "m.toml: monitor.user_agent: header value",
        "m.toml: targets[0].headers.X-Team: header value",
    ]


async def test_validate_missing_file(tmp_path):
    done = await run_cli("validate", "-c", "nope.toml", cwd=tmp_path)
    assert done == Done(2, "", "nope.toml: file not found\n")


async def test_run_with_a_bad_config_does_not_start(tmp_path):
    (tmp_path / "m.toml").write_text("[monitor\n", encoding="utf-8")
    done = await run_cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
    assert (done.code, done.stdout) == (2, "")
    assert done.stderr.startswith("m.toml: TOML syntax error: ")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["run", "--bogus"],
        ["validate", "extra"],
        ["init", "--from"],
    ],
)
async def test_usage_error(tmp_path, args):
    done = await run_cli(*args, cwd=tmp_path)
    assert (done.code, done.stdout) == (2, "")
    assert done.stderr.endswith("\n")
    assert USAGE_LINE.fullmatch(done.stderr[:-1]), done.stderr


async def test_unwritable_output_file(tmp_path, server):
    write_config(tmp_path, cli_config(ok_target(server)))
    done = await run_cli(
        "run", "--once", "-c", "m.toml", "-o", "no/such/dir/out.jsonl", cwd=tmp_path
    )
    assert done == Done(
        2, "", "trio-monitor: cannot open no/such/dir/out.jsonl: No such file or directory\n"
    )


# --- init ------------------------------------------------------------------------


async def test_init_writes_a_config_that_validates(tmp_path):
    done = await run_cli("init", cwd=tmp_path)
    assert done == Done(
        0, "wrote monitor.toml (example targets); next: trio-monitor run -c monitor.toml\n", ""
    )
    assert len(load_config(tmp_path / "monitor.toml", env={}).targets) == 2
    # validate's default config is the one init writes by default
    assert await run_cli("validate", cwd=tmp_path) == Done(0, "monitor.toml: ok, 2 targets\n", "")


async def test_init_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text("# mine\n", encoding="utf-8")
    done = await run_cli("init", "-o", "m.toml", cwd=tmp_path)
    assert done == Done(2, "", "trio-monitor: m.toml exists; use --force to overwrite it\n")
    assert path.read_text(encoding="utf-8") == "# mine\n"

    done = await run_cli("init", "-o", "m.toml", "--force", cwd=tmp_path)
    assert done.code == 0
    assert path.read_text(encoding="utf-8").startswith("# trio-monitor configuration.")


async def test_init_to_stdout(tmp_path):
    done = await run_cli("init", "-o", "-", cwd=tmp_path)
    assert (done.code, done.stderr) == (0, "")
    data = tomllib.loads(done.stdout)
    assert [t["name"] for t in data["targets"]] == ["example", "example-org"]
    assert list(tmp_path.iterdir()) == []


async def test_init_from_a_url_list(tmp_path, server):
    (tmp_path / "urls.txt").write_text(
        f"# ours\n{server.url('/ok')}\n\n127.0.0.1:{server.port}/status/204  # bare\n",
        encoding="utf-8",
    )
    done = await run_cli("init", "--from", "urls.txt", "-o", "m.toml", cwd=tmp_path)
    assert (done.code, done.stderr) == (0, "")
    assert done.stdout.startswith("wrote m.toml (2 targets);")
    targets = load_config(tmp_path / "m.toml", env={}).targets
    assert [(t.name, t.url) for t in targets] == [
        (f"127.0.0.1:{server.port}/ok", server.url("/ok")),
        (f"127.0.0.1:{server.port}/status/204", f"https://127.0.0.1:{server.port}/status/204"),
    ]


async def test_init_from_stdin_with_bad_lines(tmp_path):
    done = await run_cli("init", "--from", "-", "-o", "-", cwd=tmp_path, stdin=b"ftp://x/\n\n")
    assert done == Done(
        2,
        "",
        "<stdin>: line 1: invalid URL 'ftp://x/': expected http:// or https:// with a host\n",
    )


# --- import gatus --------------------------------------------------------------

# Gatus's README "Endpoints" example (without conditions: they validate once the
# conditions engine is on main; tests/test_import_gatus.py checks every fixture)
GATUS = """\
endpoints:
  - name: website
    url: "http://127.0.0.1:8080/health"
    interval: 5m
    headers:
      Authorization: "Bearer $GATUS_CLI_TEST_TOKEN"
    alerts:
      - type: slack
"""


async def test_import_gatus_to_stdout(tmp_path):
    (tmp_path / "config.yaml").write_text(GATUS, encoding="utf-8")
    done = await run_cli("import", "gatus", "config.yaml", cwd=tmp_path)
    assert done.code == 0
    # ${ENV} kept, and named: the machine that runs the config must set it
    assert done.stderr == "<stdout>: set GATUS_CLI_TEST_TOKEN in the environment that runs it\n"
    assert tomllib.loads(done.stdout)["targets"] == [
        {
            "name": "website",
            "url": "http://127.0.0.1:8080/health",
            "interval": "5m",
            "headers": {"Authorization": "Bearer ${GATUS_CLI_TEST_TOKEN}"},
        }
    ]
    assert "# gatus: alerts not imported: " in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


async def test_import_gatus_to_a_file_refuses_to_overwrite(tmp_path):
    (tmp_path / "config.yaml").write_text(GATUS.replace("$GATUS_CLI_TEST_TOKEN", "t"), "utf-8")
    done = await run_cli("import", "gatus", "config.yaml", "-o", "m.toml", cwd=tmp_path)
    assert done == Done(0, "wrote m.toml (1 targets); next: trio-monitor validate -c m.toml\n", "")
    assert await run_cli("validate", "-c", "m.toml", cwd=tmp_path) == Done(
        0, "m.toml: ok, 1 targets\n", ""
    )
    written = (tmp_path / "m.toml").read_text(encoding="utf-8")

    (tmp_path / "config.yaml").write_text(GATUS.replace("5m", "1m"), encoding="utf-8")
    done = await run_cli("import", "gatus", "config.yaml", "-o", "m.toml", cwd=tmp_path)
    assert done == Done(2, "", "trio-monitor: m.toml exists; use --force to overwrite it\n")
    assert (tmp_path / "m.toml").read_text(encoding="utf-8") == written

    done = await run_cli("import", "gatus", "config.yaml", "-o", "m.toml", "--force", cwd=tmp_path)
    assert done.code == 0
    assert 'interval = "1m"' in (tmp_path / "m.toml").read_text(encoding="utf-8")


async def test_import_gatus_invalid_result_is_written_and_reported(tmp_path):
    # Gatus takes a 2h timeout; ours is at most 1h: the file is written, to be fixed
    (tmp_path / "config.yaml").write_text(
        "endpoints:\n  - {name: a, url: 'http://127.0.0.1/', client: {timeout: 2h}}\n", "utf-8"
    )
    done = await run_cli("import", "gatus", "config.yaml", "-o", "m.toml", cwd=tmp_path)
    assert done == Done(2, "", "m.toml: targets[0].timeout: must be from 1ms to 1h, got '2h'\n")
    assert 'timeout = "2h"' in (tmp_path / "m.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("endpoints:\n  - name: [\n", "c.yaml: line 3: not valid YAML: expected the node content"),
        ("version: 3\nservices: {}\n", "c.yaml: not a Gatus config (no `endpoints`"),
        (b"\xff", "c.yaml: not UTF-8 text"),
        # found by test_import_gatus's fuzz tests: each was a traceback
        ("endpoints:\n  - name: 2001-02-30\n", "c.yaml: not valid YAML: day is out of range"),
        ("endpoints: &e [*e]\n", "c.yaml: a YAML alias refers to a node it is inside of"),
        ("endpoints: " + "[" * 5000 + "]" * 5000, "c.yaml: not valid YAML: nested too deeply"),
        (None, "c.yaml: file not found"),
    ],
)
async def test_import_gatus_bad_input_is_one_line(tmp_path, text, error):
    if isinstance(text, str):
        (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    elif text is not None:
        (tmp_path / "c.yaml").write_bytes(text)
    done = await run_cli("import", "gatus", "c.yaml", cwd=tmp_path)
    assert (done.code, done.stdout) == (2, "")
    assert done.stderr.startswith(error)
    assert done.stderr.count("\n") == 1


# --- run --once --------------------------------------------------------------------


async def test_once_all_ok(tmp_path, server):
    config = write_config(
        tmp_path, cli_config(ok_target(server), ok_target(server, "moved", "/redirect/2"))
    )
    done = await run_cli("run", "--once", "-c", str(config), cwd=tmp_path)
    assert done.code == 0
    records = parse_lines(done.lines)
    probes = sorted((r for r in records if r["type"] == "probe"), key=lambda r: r["target"])
    assert [(p["target"], p["ok"], p["status"]) for p in probes] == [
        ("moved", True, 200),
        ("ok", True, 200),
    ]
    for probe in probes:
        check_probe(probe)
    assert probes[0]["final_url"] == server.url("/redirect/0")
    (summary,) = [r for r in records if r["type"] == "round"]
    check_round(summary)
    assert (summary["round"], summary["targets"], summary["ok"], summary["failed"]) == (1, 2, 2, 0)
    assert records[-1] == summary
    # logs go to stderr, and only there
    assert f"trio-monitor: monitoring 2 targets from {config}" in done.stderr.splitlines()
    assert all(line.startswith("trio-monitor: ") for line in done.stderr.splitlines())


async def test_once_exits_1_when_a_target_fails(tmp_path, server):
    write_config(
        tmp_path,
        cli_config(
            ok_target(server),
            {"name": "closed", "url": f"http://127.0.0.1:{closed_port()}/"},
            ok_target(server, "teapot", "/status/418"),
            alerts={"failure_threshold": 1},
        ),
    )
    done = await run_cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
    assert done.code == 1
    records = parse_lines(done.lines)
    outcome = {r["target"]: (r["ok"], r["error"]) for r in records if r["type"] == "probe"}
    assert outcome == {
        "ok": (True, None),
        "closed": (False, "connect"),
        "teapot": (False, "status"),
    }
    for record in records:
        if record["type"] == "probe":
            check_probe(record)
    alerts = {r["target"]: r["event"] for r in records if r["type"] == "alert"}
    assert alerts == {"closed": "down", "teapot": "down"}
    (summary,) = [r for r in records if r["type"] == "round"]
    assert (summary["targets"], summary["ok"], summary["failed"]) == (3, 1, 2)


async def test_json_line_contract(tmp_path, server):
    """Renaming or removing a key breaks consumers: that needs a new schema version."""
    write_config(tmp_path, cli_config(ok_target(server)))
    done = await run_cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
    assert done.code == 0
    probe_line, round_line = done.lines
    probe, summary = json.loads(probe_line), json.loads(round_line)
    assert list(probe)[:2] == list(summary)[:2] == ["schema", "type"]
    assert set(probe) == PROBE_KEYS
    assert set(summary) == ROUND_KEYS
    assert probe["url"] == server.url("/ok")
    assert probe["remote_addr"] == f"127.0.0.1:{server.port}"
    assert probe["bytes"] == len(b"hello world")
    assert probe["content_hash"].startswith("sha256:")
    assert (summary["skipped"], summary["dropped"]) == (0, 0)


async def test_once_output_file(tmp_path, server):
    write_config(tmp_path, cli_config(ok_target(server)))
    for _ in range(2):  # -o appends
        done = await run_cli("run", "--once", "-c", "m.toml", "-o", "out.jsonl", cwd=tmp_path)
        assert (done.code, done.stdout) == (0, "")
    text = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert [r["type"] for r in parse_lines(text.splitlines())] == ["probe", "round"] * 2


async def test_once_output_from_the_config_is_relative_to_it(tmp_path, server):
    (tmp_path / "conf").mkdir()
    write_config(tmp_path / "conf", cli_config(ok_target(server), output="out.jsonl"))
    done = await run_cli("run", "--once", "-c", "conf/m.toml", cwd=tmp_path)
    assert (done.code, done.stdout) == (0, "")
    lines = (tmp_path / "conf" / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [r["type"] for r in parse_lines(lines)] == ["probe", "round"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("where", [("-o", "/dev/full"), ()], ids=["-o", "output"])
async def test_a_full_output_does_not_stop_monitoring(tmp_path, server, where):
    extra = {} if where else {"output": "/dev/full"}
    config = write_config(tmp_path, cli_config(ok_target(server), interval="100ms", **extra))
    async with start_monitor(config, *where) as monitor:
        await monitor.wait_log("cannot write output /dev/full: No space left on device")
        seen = server.hits["/ok"]
        await server.wait_hits("/ok", seen + 5)  # probing goes on
        assert monitor.process.returncode is None
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    assert sum("cannot write output" in line for line in monitor.err.lines) == 1  # not per line


async def test_run_with_stdout_closed_is_one_line(tmp_path, server):
    write_config(tmp_path, cli_config(ok_target(server)))
    with trio.fail_after(WAIT):
        proc = await trio.run_process(
            [EXE, "run", "--once", "-c", "m.toml"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            capture_stderr=True,
            check=False,
            preexec_fn=lambda: os.close(1),  # the child starts with stdout closed
        )
    assert (proc.returncode, proc.stderr.decode()) == (
        2,
        "trio-monitor: stdout is closed: give an output file (-o FILE or monitor.output)\n",
    )


# --- signals -----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_stop_signal_exits_cleanly(tmp_path, server, signum):
    config = write_config(tmp_path, cli_config(ok_target(server)))
    async with start_monitor(config) as monitor:
        await monitor.wait_record(is_round)
        monitor.send(signum)
        assert await monitor.wait_exit() == 0
    assert monitor.out.tail == b""  # the last line is complete
    records = monitor.records()
    assert records[0]["type"] == "probe"
    for record in records:
        (check_probe if record["type"] == "probe" else check_round)(record)
    assert any("stopping: finishing probes in flight" in line for line in monitor.err.lines)


async def test_stop_cancels_a_hanging_probe_after_the_grace(tmp_path, server):
    config = write_config(
        tmp_path, cli_config(ok_target(server, "hang", "/hang"), timeout="30s", grace="1s")
    )
    async with start_monitor(config) as monitor:
        with trio.fail_after(WAIT):
            await server.wait_in_flight(1)
        sent = trio.current_time()
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
        waited = trio.current_time() - sent
    assert 1.0 <= waited < 10.0  # the grace (plus start-up noise), not the 30 s timeout
    # cancelled, so no result; the only rounds are the ones that skipped it while it hung
    assert monitor.out.tail == b""
    assert [(r["type"], r["targets"]) for r in monitor.records()] == [("round", 0)] * len(
        monitor.out.lines
    )
    assert any("(up to 1s)" in line for line in monitor.err.lines)


async def test_second_signal_stops_at_once(tmp_path, server):
    config = write_config(
        tmp_path, cli_config(ok_target(server, "hang", "/hang"), timeout="30s", grace="30s")
    )
    async with start_monitor(config) as monitor:
        with trio.fail_after(WAIT):
            await server.wait_in_flight(1)
        monitor.send(signal.SIGINT)
        await monitor.wait_log("stopping: finishing probes in flight (up to 30s)")
        monitor.send(signal.SIGINT)
        assert await monitor.wait_exit(limit=5.0) == 130
    assert monitor.err.lines[-1] == "trio-monitor: stopping now"


async def test_reload_adds_a_target(tmp_path, server):
    config = write_config(tmp_path, cli_config(ok_target(server)))
    async with start_monitor(config) as monitor:
        await monitor.wait_record(is_probe("ok"))
        write_config(
            tmp_path, cli_config(ok_target(server), ok_target(server, "new", "/status/204"))
        )
        monitor.send(signal.SIGHUP)
        await monitor.wait_log(f"reloaded {config}: 2 targets, 1 unchanged")
        index, record = await monitor.wait_record(is_probe("new"))
        assert (record["ok"], record["status"]) == (True, 204)
        await monitor.wait_record(is_probe("ok"), start=index)  # the old one carries on
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    monitor.records()


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ("[monitor\n", "TOML syntax error: "),
        ('[[targets]]\nurl = "http://127.0.0.1:1/"\ntimeout = "soon"\n', "targets[0].timeout: "),
        (
            '[[targets]]\nurl = "http://127.0.0.1:1/"\nheaders = { X-Team = "☃" }\n',
            "targets[0].headers.X-Team: header value cannot carry '☃' (U+2603)",
        ),
        ("", "it would remove 1 of 1 targets; if that is meant, set [monitor] allow_shrink = true"),
    ],
    ids=["syntax", "invalid", "header", "empty"],
)
async def test_reload_with_a_broken_config_keeps_running(tmp_path, server, broken, problem):
    config = write_config(tmp_path, cli_config(ok_target(server)))
    async with start_monitor(config) as monitor:
        await monitor.wait_record(is_round)
        config.write_text(broken, encoding="utf-8")
        monitor.send(signal.SIGHUP)
        line = await monitor.wait_log("reload failed")
        assert line.startswith(
            f"trio-monitor: reload failed, keeping the running config: {config}: {problem}"
        )
        last = max(r["round"] for r in monitor.records())
        # two rounds on, certainly started after the failed reload: still the old config
        _, record = await monitor.wait_record(lambda r: is_round(r) and r["round"] >= last + 2)
        assert record["ok"] == 1
        assert monitor.process.returncode is None
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    assert {r["target"] for r in monitor.records() if r["type"] == "probe"} == {"ok"}


async def _wait_for_file(path: Path) -> None:
    """Until the monitor has written a line to `path`."""
    file = trio.Path(path)
    with trio.fail_after(WAIT):
        # polled: nothing else tells when a line reached the file
        while not (await file.exists() and (await file.stat()).st_size):  # noqa: ASYNC110
            await trio.sleep(0.01)


@pytest.mark.parametrize(
    ("where", "broken"),
    [(("-o", "out.jsonl"), None), ((), "[monitor\n")],
    ids=["-o", "output-and-a-bad-config"],
)
async def test_sighup_reopens_the_output_after_rotation(tmp_path, server, where, broken):
    extra = {} if where else {"output": "out.jsonl"}
    config = write_config(tmp_path, cli_config(ok_target(server), interval="100ms", **extra))
    out, rotated = tmp_path / "out.jsonl", tmp_path / "out.jsonl.1"
    async with start_monitor(config, *where) as monitor:
        await _wait_for_file(out)
        out.rename(rotated)  # logrotate: mv, then the postrotate SIGHUP
        if broken is not None:
            config.write_text(broken)  # the reload fails; the output is reopened all the same
        monitor.send(signal.SIGHUP)
        await monitor.wait_log(
            f"reopened output {out}" if not where else "reopened output out.jsonl"
        )
        seen = server.hits["/ok"]
        await server.wait_hits("/ok", seen + 3)
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    before = parse_lines(rotated.read_text(encoding="utf-8").splitlines())
    after = parse_lines(out.read_text(encoding="utf-8").splitlines())  # whole lines only
    assert before
    assert after
    records = before + after
    rounds = sorted(r["round"] for r in records if is_round(r))
    assert rounds == list(range(1, len(rounds) + 1))  # none lost, none twice
    probes = [r["round"] for r in records if r["type"] == "probe"]
    assert probes == [
        r["round"]
        for r in sorted(records, key=lambda r: r["round"])
        if is_round(r) and r["targets"]
    ]


async def test_reader_going_away_stops_the_monitor(tmp_path, server):
    config = write_config(tmp_path, cli_config(ok_target(server)))
    async with start_monitor(config) as monitor:
        await monitor.wait_line(monitor.out, lambda line: True)
        await monitor.close_stdout()
        assert await monitor.wait_exit() == 0
    assert "trio-monitor: output closed by its reader; stopping" in monitor.err.lines
