"""What every benchmark run shares: scenarios, the farm, the generated configs, the probers'
command lines, and the local CA for HTTPS.

A scenario's targets are written twice: as trio-monitor TOML (with the `connection` and
`ca_file` keys, or without them under `--legacy-config`, for versions before issue 11)
and as the JSON list the asyncio + aiohttp prober (and its blackbox_exporter mode) reads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from procs import Children, read_line
from report import Setup
from targets import HEALTHY, MIXED, Target, generate, write_json, write_toml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TARGETS_PER_PORT = 10  # the farm listens on targets / 10 ports, at most MAX_PORTS
MAX_PORTS = 500
FARM_START_TIMEOUT = 30.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Scenario:
    """`N[@C][:mixed][:fresh][:https]`: N targets, concurrency C (default: N, at most
    --max-concurrency), kept-alive connections unless `fresh`, plain HTTP unless `https`
    (the farm serves TLS with a local trustme CA that every prober trusts)."""

    targets: int
    concurrency: int | None = None
    mixed: bool = False
    fresh: bool = False
    https: bool = False

    @classmethod
    def parse(cls, token: str) -> Scenario:
        sizes, *kinds = token.strip().replace("_", "").split(":")
        count, _, concurrency = sizes.partition("@")
        if (
            not count.isdigit()
            or not (concurrency or "0").isdigit()
            or not set(kinds) <= {"mixed", "fresh", "https"}
        ):
            raise argparse.ArgumentTypeError(
                f"bad scenario {token!r}: use N[@C][:mixed][:fresh][:https]"
            )
        return cls(
            int(count),
            int(concurrency) if concurrency else None,
            "mixed" in kinds,
            "fresh" in kinds,
            "https" in kinds,
        )

    @classmethod
    def parse_list(cls, text: str) -> list[Scenario]:
        return [cls.parse(token) for token in text.split(",") if token.strip()]

    def limit(self, max_concurrency: int) -> int:
        return self.concurrency or min(self.targets, max_concurrency)

    @property
    def label(self) -> str:
        label = f"{self.targets:,} targets, " + ("mixed failures" if self.mixed else "healthy")
        label += ", HTTPS" if self.https else ", HTTP"
        label += ", fresh connections" if self.fresh else ", keep-alive"
        return label + (f", concurrency {self.concurrency:,}" if self.concurrency else "")

    @property
    def stem(self) -> str:
        return (
            str(self.targets)
            + (f"c{self.concurrency}" if self.concurrency else "")
            + ("-mixed" if self.mixed else "")
            + ("-fresh" if self.fresh else "")
            + ("-https" if self.https else "")
        )


@dataclass(frozen=True)
class Tls:
    """A trustme CA and the farm's certificate for 127.0.0.1 (PEM files, ECDSA P-256)."""

    ca: Path
    cert: Path
    key: Path


def make_tls(workdir: Path) -> Tls:
    import trustme  # the bench extra's; only needed for HTTPS scenarios

    # ECDSA: a handshake costs the single-process farm a fraction of RSA's signing time,
    # so the farm stays ahead of the probers in the fresh-connection HTTPS scenarios
    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    server = ca.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.ECDSA)
    tls = Tls(workdir / "ca.pem", workdir / "farm-cert.pem", workdir / "farm-key.pem")
    ca.cert_pem.write_to_path(str(tls.ca))
    server.private_key_pem.write_to_path(str(tls.key))
    server.cert_chain_pems[0].write_to_path(str(tls.cert))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(tls.cert), append=True)
    return tls


@dataclass(frozen=True)
class Farm:
    pid: int
    ports: list[int]
    closed: list[int]


@dataclass(frozen=True)
class Prepared:
    """A scenario's targets, written as trio-monitor TOML and as the aiohttp JSON list."""

    scenario: Scenario
    setup: Setup
    targets: list[Target]
    toml: Path
    json: Path
    ca_file: Path | None  # the CA the probers trust (HTTPS scenarios)


@contextlib.contextmanager
def running_farm(
    children: Children, targets: int, workdir: Path, tls: Tls | None = None
) -> Iterator[Farm]:
    ports = min(MAX_PORTS, max(1, targets // TARGETS_PER_PORT))
    argv = [sys.executable, str(BENCH / "farm.py"), "--ports", str(ports)]
    argv += ["--closed", str(max(1, ports // 10))]
    if tls is not None:
        argv += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    err_path = workdir / "farm.err"
    with err_path.open("ab") as err:
        proc = children.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    try:
        line = read_line(proc, FARM_START_TIMEOUT)
        if not line.startswith("READY "):
            raise RuntimeError(f"the farm did not start (got {line!r}); see {err_path}")
        ready = json.loads(line.removeprefix("READY "))
        yield Farm(proc.pid, ready["ports"], ready["closed"])
    finally:
        children.end(proc)
        proc.stdout.close()


def config_keys(
    scenario: Scenario, tls: Tls | None, legacy: bool
) -> tuple[dict[str, object], dict[str, object]]:
    """-> (extra [monitor] keys, keys of every target) for the connection policy and the CA.
    `legacy`: trio-monitor before `connection`/`ca_file` existed: pooled connections
    only, and HTTPS verified against nothing (`verify_tls = false`) instead of the CA."""
    if legacy:
        return ({"verify_tls": False} if tls else {}), {}
    monitor = {"connection": "fresh" if scenario.fresh else "reuse"}
    return monitor, ({"ca_file": str(tls.ca)} if tls else {})


def prepare(
    scenario: Scenario,
    farm: Farm,
    args: argparse.Namespace,
    path: Path,
    *,
    interval: str = "60s",  # --once: unused
    tls: Tls | None = None,
    history: bool = False,
    delay_ms: int | None = None,
    connection_keys: bool = True,
) -> Prepared:
    """One-round scenarios keep no history (the aiohttp prober keeps none either); the
    whole-process run keeps it, as trio-monitor does by default. `connection_keys`
    False leaves `connection` at trio-monitor's default."""
    concurrency = scenario.limit(args.max_concurrency)
    failures = MIXED if scenario.mixed else HEALTHY
    scheme = "https" if scenario.https else "http"
    targets = generate(
        scenario.targets, farm.ports, farm.closed, failures, args.seed,
        scheme=scheme, delay_ms=delay_ms,
    )  # fmt: skip
    monitor: dict[str, object] = {
        "interval": interval,
        "timeout": f"{args.timeout:g}s",
        "concurrency": concurrency,
        "per_host": concurrency,  # never the limit (aiohttp's limit_per_host: the same)
        "retries": 0,
    }
    extra, per_target = config_keys(scenario, tls, args.legacy_config)
    if not connection_keys:
        extra.pop("connection", None)
    toml, targets_json = path.with_suffix(".toml"), path.with_suffix(".json")
    write_toml(toml, targets, monitor | extra, history, per_target)
    write_json(targets_json, targets)
    setup = Setup(
        label=scenario.label,
        targets=len(targets),
        kinds=dict(Counter(t.kind for t in targets)),
        ports=len(farm.ports),
        closed_ports=len(farm.closed),
        concurrency=concurrency,
        per_host=concurrency,
        timeout_s=args.timeout,
        floor_ms=floor_ms(targets, args.timeout),
        work_bound_ms=sum(_designed_ms(t, args.timeout) for t in targets) / concurrency,
    )
    return Prepared(scenario, setup, targets, toml, targets_json, tls.ca if tls else None)


def _designed_ms(target: Target, timeout_s: float) -> float:
    return timeout_s * 1000 if target.kind == "hang" else target.latency_ms


def floor_ms(targets: list[Target], timeout_s: float) -> float:
    """No round is faster: the slowest healthy target, or the timeout if any target hangs."""
    healthy = max((t.latency_ms for t in targets if t.healthy), default=0)
    hangs = any(t.kind == "hang" for t in targets)
    return max(healthy, timeout_s * 1000 if hangs else 0)


def trio_monitor_script() -> str:
    script = Path(sys.executable).parent / "trio-monitor"
    found = str(script) if script.exists() else shutil.which("trio-monitor")
    if not found:
        raise SystemExit("trio-monitor is not installed: pip install -e '.[bench]'")
    return found


def aiohttp_argv(prepared: Prepared, blackbox: str | None = None) -> list[str]:
    """The asyncio + aiohttp prober configured like the scenario (or driving blackbox)."""
    setup, scenario = prepared.setup, prepared.scenario
    argv = [
        sys.executable,
        str(BENCH / "aiohttp_probe.py"),
        f"--targets={prepared.json}",
        f"--concurrency={setup.concurrency}",
        f"--per-host={setup.per_host}",
        f"--timeout={setup.timeout_s:g}",
    ]
    if blackbox is not None:
        module = "http_2xx_ca" if scenario.https else "http_2xx"
        return [*argv, f"--blackbox={blackbox}", f"--module={module}"]
    if scenario.fresh:
        argv.append("--fresh")
    if prepared.ca_file is not None:
        argv.append(f"--ca-file={prepared.ca_file}")
    return argv


def read_jsonl(path: Path) -> Iterator[dict]:
    with path.open() as f:
        for line in f:
            with contextlib.suppress(ValueError):
                yield json.loads(line)


def check_config_keys(workdir: Path, tls: Tls, legacy: bool) -> None:
    """Stop early, with one line, if the installed trio-monitor rejects the keys we write."""
    extra, per_target = config_keys(Scenario(1, fresh=True, https=True), tls, legacy)
    path = workdir / "keys-check.toml"
    target = Target("check", "https://127.0.0.1:9/", "ok", 0)
    write_toml(path, [target], {"interval": "60s", **extra}, False, per_target)
    done = subprocess.run(
        [trio_monitor_script(), "validate", "-c", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        first = (done.stderr or done.stdout).strip().splitlines()[:1]
        hint = "" if legacy else " (versions before `connection`/`ca_file`: --legacy-config)"
        raise SystemExit(f"trio-monitor rejects the generated config: {first}{hint}")
