"""The push (heartbeat) kind: its keys, tokens, deadlines (cron with a time zone
across daylight-saving changes), the scheduler's checks on trio's autojump clock,
and its URLs on the real server."""

from __future__ import annotations

import json
import os
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
import trio
from factories import config_doc, make_config
from fakes import dispatcher_for, running
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_lifecycle import LineSink

from trio_monitor import ConfigError, ProbeResult
from trio_monitor._errors import ErrorKind, StoreError
from trio_monitor.engine.schedule import Scheduler
from trio_monitor.probes.push import PushProber
from trio_monitor.probes.push.heartbeat import Heartbeat, expected_after, verdict
from trio_monitor.probes.push.tokens import Keyring, key_path

SERVER = {"listen": "127.0.0.1:0"}
TOKEN = "backup-token-0123456789"


def push(name="job", **keys):
    return {"name": name, "kind": "push", **keys}


def config_of(*targets, server=SERVER, **monitor):
    return make_config(
        config_doc(*targets, monitor={"stagger": "0s", **monitor}, server=server or {})
        if server
        else config_doc(*targets, monitor={"stagger": "0s", **monitor})
    )


def problems(*targets, server=SERVER):
    with pytest.raises(ConfigError) as info:
        config_of(*targets, server=server)
    return info.value.problems


# --- config ------------------------------------------------------------------------


def test_a_push_target_resolves():
    (target,) = config_of(push(schedule="30  2 * * *", tz="Europe/Berlin")).targets
    assert (target.kind, target.url) == ("push", "push:job")
    assert (target.spec.schedule, target.spec.tz, target.spec.grace) == (
        "30 2 * * *",
        "Europe/Berlin",
        3600.0,
    )
    (target,) = config_of(push(expect_every="1h", grace="5m")).targets
    assert (target.spec.every, target.spec.schedule, target.spec.grace) == (3600.0, None, 300.0)


@pytest.mark.parametrize(
    ("table", "line"),
    [
        (push(), "targets[0].expect_every: set expect_every or schedule"),
        (
            push(expect_every="1h", schedule="* * * * *"),
            "targets[0].schedule: set expect_every or schedule, not both",
        ),
        (
            push(schedule="61 * * * *"),
            "targets[0].schedule: invalid cron expression '61 * * * *': Bad minute",
        ),
        (
            push(schedule="* * * * *", tz="Mars/Olympus"),
            "targets[0].tz: unknown time zone 'Mars/Olympus' (use an IANA name like"
            ' "Europe/Berlin" or "UTC")',
        ),
        (
            push(expect_every="1h", tz="UTC"),
            "targets[0].tz: applies only with schedule (set it, or remove tz)",
        ),
        (
            {"kind": "push", "expect_every": "1h"},
            "targets[0].name: required key missing (a push target has no url)",
        ),
        (
            push(expect_every="1h", url="http://127.0.0.1/"),
            "targets[0].url: kind 'push' takes no url: remove it",
        ),
        (
            push(expect_every="1h", token="short"),
            "targets[0].token: use 16 to 128 letters, digits, '-' or '_' (got 5 characters)",
        ),
        (
            push(expect_every="0s"),
            "targets[0].expect_every: duration must be greater than 0, got '0s'",
        ),
    ],
)
def test_bad_push_keys_are_one_line_each(table, line):
    assert problems(table) == [f"<memory>: {line}"]


def test_a_bad_schedule_and_a_bad_zone_are_both_found():
    assert problems(push(schedule="61 * * * *", tz="Mars/Olympus")) == [
        "<memory>: targets[0].tz: unknown time zone 'Mars/Olympus' (use an IANA name like"
        ' "Europe/Berlin" or "UTC")',
        "<memory>: targets[0].schedule: invalid cron expression '61 * * * *': Bad minute",
    ]


def test_a_url_is_still_required_for_other_kinds():
    assert problems({"name": "web"}) == ["<memory>: targets[0].url: required key missing"]


def test_push_targets_need_a_server_and_distinct_tokens():
    assert problems(push(expect_every="1h"), server=None) == [
        "<memory>: targets[0].kind: a push target needs a [server] section: its pings arrive"
        " at /api/v1/push/{token}"
    ]
    assert problems(
        push("a", expect_every="1h", token=TOKEN), push("b", expect_every="1h", token=TOKEN)
    ) == ["<memory>: targets[1].token: another push target has the same token"]


def test_an_explicit_token_never_shows_in_a_problem_or_the_target():
    with pytest.raises(ConfigError) as info:
        make_config(
            config_doc(push(expect_every="1h", token="${T}", interval="1ms"), server=SERVER),
            env={"T": "secret!secret!secret"},
        )
    assert "secret!" not in str(info.value)
    target = config_of(push(expect_every="1h", token=TOKEN)).targets[0]
    assert TOKEN not in repr(target)


# --- tokens --------------------------------------------------------------------------


def test_tokens_are_stable_per_name_and_key_file(tmp_path):
    config = make_config(
        config_doc(push("a", expect_every="1h"), push("b", expect_every="1h"), server=SERVER),
        path=str(tmp_path / "m.toml"),
    )
    path = key_path(config, env={})
    assert path == tmp_path / "m.push-key"  # beside the history, m.db
    a, b = config.targets
    first = Keyring(path)
    tokens = (first.token(a), first.token(b))
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = Keyring(path)  # another run: the same key file
    assert (again.token(a), again.token(b)) == tokens
    assert tokens[0] != tokens[1]
    assert len(tokens[0]) == 22
    path.unlink()  # a new key: new tokens
    assert Keyring(path).token(a) not in tokens


def test_a_key_file_that_is_no_key_is_one_line(tmp_path):
    path = tmp_path / "m.push-key"
    path.write_text("not hex\n")
    with pytest.raises(StoreError, match="not a push token key"):
        Keyring(path).key()


def test_an_explicit_token_wins():
    (target,) = config_of(push(expect_every="1h", token=TOKEN)).targets
    assert Keyring(None).token(target) == TOKEN


# --- deadlines -------------------------------------------------------------------------

NY = ZoneInfo("America/New_York")


def at(*fields: int, zone=NY) -> float:
    return datetime(*fields, tzinfo=zone).timestamp()


def local(ts: float) -> tuple[int, ...]:
    return datetime.fromtimestamp(ts, NY).timetuple()[:5]


def test_a_schedule_across_daylight_saving_changes():
    (target,) = config_of(push(schedule="30 2 * * *", tz="America/New_York")).targets
    spec = target.spec
    # 2026-03-08: 02:00 -> 03:00, no 02:30 that day: due at 03:00 (Healthchecks' rule)
    assert local(expected_after(spec, at(2026, 3, 7, 2, 31))) == (2026, 3, 8, 3, 0)
    assert local(expected_after(spec, at(2026, 3, 8, 3, 1))) == (2026, 3, 9, 2, 30)
    # 2026-11-01: 02:00 -> 01:00; 02:30 happens once
    first = expected_after(spec, at(2026, 10, 31, 2, 31))
    assert local(first) == (2026, 11, 1, 2, 30)
    assert expected_after(spec, first) - first == 86400  # a day later, 02:30 again
    # a spring-forward day is 23 hours: "every day at 12:00" stays at local noon
    (noon,) = config_of(push(schedule="0 12 * * *", tz="America/New_York")).targets
    ref = at(2026, 3, 7, 12, 0)
    assert expected_after(noon.spec, ref) - ref == 23 * 3600


def test_verdicts():
    (target,) = config_of(push(expect_every="60s", grace="10s")).targets
    spec = target.spec
    beat = Heartbeat(since=1000.0)
    assert verdict(beat, spec, 1069.9) == (None, None)
    assert verdict(beat, spec, 1070.0)[0] == ErrorKind.MISSED
    beat.record("ping", None, 1050.0)
    assert verdict(beat, spec, 1119.9) == (None, None)
    beat.record("start", None, 1100.0)  # a started run must end within grace
    assert verdict(beat, spec, 1110.0) == (
        ErrorKind.MISSED,
        "started at 1970-01-01T00:18:20.000Z, no ping within 10s",
    )
    beat.record("exit", 2, 1104.0)
    assert (beat.run_ms, beat.exit_code) == (4000.0, 2)
    assert verdict(beat, spec, 1105.0) == (
        ErrorKind.JOB_FAILED,
        "the job reported failure with exit code 2 at 1970-01-01T00:18:24.000Z",
    )
    assert verdict(beat, spec, 1174.0)[0] == ErrorKind.MISSED  # and then it is late too
    beat.record("exit", 0, 1175.0)
    assert verdict(beat, spec, 1175.0) == (None, None)
    held = Heartbeat(since=0.0, held=ErrorKind.JOB_FAILED)  # restored from history
    assert verdict(held, spec, 1.0)[0] == ErrorKind.JOB_FAILED
    held.record("ping", None, 2.0)
    assert verdict(held, spec, 3.0) == (None, None)


# --- the scheduler's checks, on trio's autojump clock -----------------------------------

EPOCH = 1_800_000_000.0  # the wall clock of these tests: EPOCH + trio's clock


def wall() -> float:
    return EPOCH + trio.current_time()


class Watch:
    """A push target under a real scheduler and state machine: its lines, timed."""

    def __init__(self, config):
        self.config = config
        self.prober = PushProber(Keyring(None), config.targets, wall=wall)
        self.lines: list[tuple[float, ProbeResult]] = []
        records: list = []
        dispatcher = dispatcher_for(config, records)
        self.t0 = trio.current_time()
        dispatcher.add_observer(self._note)
        self.scheduler = Scheduler(config, {"push": self.prober}, dispatcher)
        self.token = Keyring(None).token(config.targets[0])  # explicit in these configs

    def _note(self, record) -> None:
        if isinstance(record, ProbeResult):
            self.lines.append((round(trio.current_time() - self.t0, 3), record))

    def ping(self, event="ping", code=None) -> None:
        name = self.prober.receive(self.token, event, code)
        assert name is not None
        self.scheduler.check(name)

    def since(self, t: float) -> list[tuple[float, str | None]]:
        return [(when, r.error) for when, r in self.lines if when >= t]


async def test_pings_make_lines_at_once_and_a_deadline_is_noticed_when_it_passes(
    autojump_clock,
):
    config = config_of(
        push(expect_every="60s", grace="7s", token=TOKEN), interval="30s", confirm_interval="5s"
    )
    watch = Watch(config)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.scheduler.run)
        await trio.sleep(20)
        watch.ping()
        await trio.sleep(1)
        assert watch.since(20) == [(20.0, None)]  # its line, at once
        assert watch.lines[-1][1].push.last_event == "ping"
        await trio.sleep(70)  # due by 20 + 60 + 7 = 87: noticed then, not at 90
        missed = [when for when, error in watch.since(21) if error == "missed"]
        assert missed[0] == pytest.approx(87.05, abs=0.01)
        assert [when for when, _ in watch.since(87.1)] == [90.0]  # a confirmation serves
        watch.ping("start")
        await trio.sleep(4)
        watch.ping()
        await trio.sleep(0.5)
        when, line = watch.lines[-1]
        assert (when, line.ok, line.latency_ms, line.push.run_ms) == (95.0, True, 4000.0, 4000.0)
        watch.ping("fail")
        await trio.sleep(0.5)
        when, line = watch.lines[-1]
        assert (when, line.error) == (95.5, "job_failed")
        nursery.cancel_scope.cancel()


async def test_a_schedule_in_a_time_zone_is_checked_at_its_deadline(autojump_clock):
    zone = ZoneInfo("Europe/Berlin")
    # the wall clock starts at 01:59:00 Berlin time; due at 02:00, grace 1 minute
    global EPOCH
    saved, EPOCH = EPOCH, datetime(2026, 7, 1, 1, 59, tzinfo=zone).timestamp() - trio.current_time()
    try:
        config = config_of(
            push(schedule="0 2 * * *", tz="Europe/Berlin", grace="1m", token=TOKEN),
            interval="1h",
        )
        watch = Watch(config)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch.scheduler.run)
            await trio.sleep(200)
            missed = [when for when, error in watch.since(0) if error == "missed"]
            assert missed[0] == pytest.approx(120.05, abs=0.01)
            nursery.cancel_scope.cancel()
    finally:
        EPOCH = saved


async def test_conditions_on_the_run_time_and_exit_code(autojump_clock):
    config = config_of(
        push(expect_every="1h", token=TOKEN, conditions=["[RUN_TIME] < 2s", "[EXIT_CODE] == 0"]),
        interval="1h",
    )
    watch = Watch(config)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.scheduler.run)
        await trio.sleep(1)
        watch.ping("start")
        await trio.sleep(4)
        watch.ping("exit", 0)
        await trio.sleep(0.5)
        line = watch.lines[-1][1]
        assert (line.ok, line.error, line.error_detail) == (
            False,
            "condition",
            "[RUN_TIME] (4s) < 2s",
        )
        assert [(c.condition, c.ok, c.actual) for c in line.conditions] == [
            ("[RUN_TIME] < 2s", False, "4s"),
            ("[EXIT_CODE] == 0", True, "0"),
        ]
        nursery.cancel_scope.cancel()


def test_conditions_read_only_what_a_push_target_has():
    (line,) = problems(push(expect_every="1h", conditions=["[STATUS] == 200"]))
    assert line.startswith("<memory>: targets[0].conditions[0]: ")
    assert "STATUS" in line


# --- the real server ---------------------------------------------------------------------


def served_config(**server):
    return make_config(
        config_doc(
            push(expect_every="1h", token=TOKEN),
            monitor={"interval": "1h", "stagger": "0s"},
            server={**SERVER, **server},
        )
    )


async def answer_to_a_body(host: str, port: int, size: int, sent: int | None = None) -> bytes:
    """POST a ping announcing a body of `size` bytes, send `sent` of them (all of them
    unless given). -> the status line's start."""
    sent = size if sent is None else sent
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            head = (
                f"POST /api/v1/push/{TOKEN} HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n"
            )
            await stream.send_all(head.encode())
            for _ in range(sent // 65536):
                await stream.send_all(b"x" * 65536)
            await stream.send_all(b"x" * (sent % 65536))
            return (await stream.receive_some(4096))[:12]


async def test_push_urls_on_the_real_server():
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, served_config(token="api-secret"), out=out)
        host, port = monitor.listening
        base = f"http://{host}:{port}/api/v1/push/{TOKEN}"
        await out.wait_for(lambda o: len(o.of_type("probe")) == 1)  # its first due time
        async with httpx.AsyncClient(timeout=10) as client:
            for method, path, event in [
                ("GET", "", "ping"),
                ("POST", "/start", "start"),
                ("GET", "/0", "exit"),
                ("POST", "/fail", "fail"),
                ("GET", "/255", "exit"),
            ]:
                count = len(out.of_type("probe"))
                response = await client.request(method, base + path)
                assert (response.status_code, response.text) == (200, "OK\n")  # no bearer token
                await out.wait_for(lambda o, n=count: len(o.of_type("probe")) > n)
                assert out.of_type("probe")[-1]["push"]["last_event"] == event
            assert out.of_type("probe")[-1]["push"]["exit_code"] == 255
            assert out.of_type("probe")[-1]["error"] == "job_failed"
            for wrong in ("/256", "/abc", "/start/x"):
                assert (await client.get(base + wrong)).status_code == 404
            unknown = await client.get(f"http://{host}:{port}/api/v1/push/{'x' * 22}")
            assert (unknown.status_code, unknown.json()) == (404, {"error": "no such push URL"})
            # a body is read and dropped: the client can send it whole; over 1 MiB, 413
            assert await answer_to_a_body(host, port, 1 << 20) == b"HTTP/1.1 200"
            over = await answer_to_a_body(host, port, 1 << 30, sent=(1 << 20) + 65536)
            assert over == b"HTTP/1.1 413"
            api = await client.get(
                f"http://{host}:{port}/api/v1/targets",
                headers={"authorization": "Bearer api-secret"},
            )
            assert api.status_code == 200
            assert api.json()[0]["last"]["kind"] == "push"
            assert (await client.get(f"http://{host}:{port}/api/v1/targets")).status_code == 401
            metrics = await client.get(
                f"http://{host}:{port}/metrics", headers={"authorization": "Bearer api-secret"}
            )
            last_ping = out.of_type("probe")[-1]["push"]["last_ping"]
            (sample,) = [
                line
                for line in metrics.text.splitlines()
                if line.startswith("trio_monitor_push_last_ping_timestamp_seconds{")
            ]
            value = float(sample.rsplit(" ", 1)[1])
            assert value >= datetime.fromisoformat(last_ping).timestamp() - 0.001
        monitor.stop()
    assert TOKEN not in out.data.decode()
    assert TOKEN not in api.text


async def test_push_urls_answer_any_host_without_a_token():
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, served_config(), out=out)
        host, port = monitor.listening
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            elsewhere = {"host": "monitor.example.com"}
            pinged = await client.get(f"/api/v1/push/{TOKEN}", headers=elsewhere)
            assert pinged.status_code == 200
            assert (await client.get("/api/v1/targets", headers=elsewhere)).status_code == 421
        monitor.stop()


# pieces of a push URL's path after /api/v1/push/, raw (sent as they are)
_PATH_PIECES = st.sampled_from(
    [TOKEN, TOKEN.upper(), "/", "start", "fail", "0", "255", "256", "007", "-1", "1e2",
     "%2F", "%00", "%FF", "%C3%A9", "%D9%A2", "%C2%B2", "%", "%zz", "..", ".", "//",
     "?x=1", "&", ";", "~", "+", "%20"]
) | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=6)  # fmt: skip


def _fuzz_push(url: str) -> None:
    with httpx.Client(trust_env=False, timeout=10) as client:
        base = httpx.URL(url)

        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(
            method=st.sampled_from(["GET", "POST"]),
            rest=st.lists(_PATH_PIECES, max_size=5).map("".join),
            body=st.sampled_from([b"", b"x" * 100, b"{}"]),
        )
        @example(method="GET", rest=TOKEN + "/%D9%A2", body=b"")  # Arabic-Indic 2: no code
        @example(method="GET", rest="%C3%A9", body=b"")  # a token that is not ASCII
        @example(method="GET", rest=TOKEN + "/%C2%B2", body=b"")  # "²": isdigit(), int() refuses
        @example(method="POST", rest=TOKEN + "/fail/x", body=b"")
        @example(method="GET", rest=".", body=b"")
        @example(method="GET", rest=TOKEN + "/./start", body=b"")
        def ping(method: str, rest: str, body: bytes) -> None:
            raw = b"/api/v1/push/" + rest.encode()
            response = client.request(method, base.copy_with(raw_path=raw), content=body)
            if response.status_code == 307:
                # "/api/v1/push/." is "/api/v1/push" once its dot segment is removed (RFC
                # 3986, as hypercorn does): Starlette redirects to the slash
                assert b"/." in raw, (raw, response.headers)
                return
            assert response.status_code in (200, 404), (raw, response.status_code, response.text)
            if response.status_code == 200:
                assert rest.startswith(TOKEN), raw

        ping()


@pytest.mark.fuzz
async def test_no_push_path_makes_a_500():
    """Whatever follows /api/v1/push/: 200 for the target's own URLs, else 404 (413 for
    a body too large: test_push_urls_on_the_real_server; a redirect for a dot segment
    that ends the path); never a 500."""
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, served_config(), out=LineSink())
        host, port = monitor.listening
        await trio.to_thread.run_sync(_fuzz_push, f"http://{host}:{port}")
        monitor.stop()


# --- end to end: the console script, its server, its JSON lines ---------------------------


def cli_push_config(tmp_path):
    from factories import write_config

    return write_config(
        tmp_path,
        config_doc(
            push("backup", expect_every="1s", grace="1s"),
            push("nightly", schedule="30 2 * * *", tz="Europe/Berlin"),
            monitor={"interval": "1s"},
            server={"listen": "127.0.0.1:0"},
        ),
    )


@pytest.mark.subprocess
async def test_push_urls_command(tmp_path):
    from test_cli import run_cli

    config = cli_push_config(tmp_path)
    done = await run_cli("push-urls", "-c", str(config), cwd=tmp_path)
    assert done.code == 0, done.stderr
    (backup, backup_url), (nightly, _) = (line.rsplit(" ", 1) for line in done.lines)
    assert (backup, nightly) == ("backup", "nightly")
    assert backup_url.startswith("http://127.0.0.1:0/api/v1/push/")
    as_json = await run_cli(
        "push-urls",
        "-c",
        str(config),
        "--json",
        "--base-url",
        "https://m.example/mon/",
        cwd=tmp_path,
    )
    urls = json.loads(as_json.stdout)
    assert [set(u) for u in urls] == [{"name", "url"}] * 2
    assert urls[0]["url"] == backup_url.replace("http://127.0.0.1:0", "https://m.example/mon")
    again = await run_cli("push-urls", "-c", str(config), cwd=tmp_path)  # the same key file
    assert again.lines == done.lines
    bad = await run_cli("push-urls", "-c", str(config), "--base-url", "ftp://x", cwd=tmp_path)
    assert bad.code == 2
    assert bad.stderr.startswith("trio-monitor: --base-url: expected http(s)://")


@pytest.mark.subprocess
async def test_pings_from_outside_then_a_restart(tmp_path):
    from test_cli import run_cli, start_monitor

    config = cli_push_config(tmp_path)

    def backup(r: dict) -> bool:
        return r["type"] == "probe" and r["target"] == "backup"

    async with start_monitor(config) as monitor:
        served = await monitor.wait_log("serving HTTP on ")
        base = served.rsplit(" ", 1)[1]
        done = await run_cli(
            "push-urls", "-c", str(config), "--json", "--base-url", base, cwd=tmp_path
        )
        url = json.loads(done.stdout)[0]["url"]
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(url)).text == "OK\n"
            index, line = await monitor.wait_record(
                lambda r: backup(r) and r["push"]["last_event"] == "ping"
            )
            assert (line["ok"], line["kind"], line["url"]) == (True, "push", "push:backup")
            assert (await client.post(f"{url}/1")).status_code == 200
            index, line = await monitor.wait_record(lambda r: backup(r) and not r["ok"], index)
            assert (line["error"], line["push"]["exit_code"]) == ("job_failed", 1)
            _, line = await monitor.wait_record(
                lambda r: backup(r) and r["error"] == "missed", index
            )
            assert line["push"]["last_event"] == "exit"
        monitor.send(2)  # SIGINT
        assert await monitor.wait_exit() == 0
        assert url.rsplit("/", 1)[1] not in "\n".join(monitor.out.lines + monitor.err.lines)
    # after a restart the last stored result (missed) holds until the next ping
    async with start_monitor(config) as monitor:
        _, line = await monitor.wait_record(backup)
        assert (line["ok"], line["error"]) == (False, "missed")
        assert "the last stored result was missed" in line["error_detail"]
        monitor.send(2)
        assert await monitor.wait_exit() == 0


def test_a_logged_path_masks_the_push_token():
    from trio_monitor.server.app import _shown_path

    assert _shown_path(f"/api/v1/push/{TOKEN}/start") == "/api/v1/push/***/start"
    assert _shown_path(f"/api/v1/push/{TOKEN}") == "/api/v1/push/***"
    assert _shown_path("/api/v1/targets/x") == "/api/v1/targets/x"
