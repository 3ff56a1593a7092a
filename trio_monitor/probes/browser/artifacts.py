"""What a failed browser probe leaves behind: a screenshot (PNG) and the page's console
log, kept in the state directory with bounded retention, and found again by the API.

    <state dir>/browser-artifacts/<target slug>/<UTC time>.png | .log

The state directory is where the history file is (else $STATE_DIRECTORY, else beside the
config file), as for push's key file (probes/push/tokens.py). A target's slug is its
name made safe for a file name plus a hash of the name (two names never share one).

`ConsoleLog` collects the page's console messages, uncaught errors and browser log
entries as they come (one line each, capped), every filled secret masked. `capture`
takes the screenshot while the page is still open (shielded, bounded). `ArtifactStore`
writes both in a worker thread (one at a time: never on the event loop), then deletes the
oldest beyond `[monitor] browser_artifacts_keep` per target and beyond MAX_TOTAL_BYTES
over all targets. The probe line names them relative to the state directory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ..._config import Config
from ..._secrets import MASK
from ..push.tokens import key_path

if TYPE_CHECKING:
    from .cdp import PageSession

log = logging.getLogger("trio_monitor")

DIRECTORY = "browser-artifacts"
MAX_LINES = 500  # console lines kept per probe (then one line says how many more)
MAX_LINE = 2000  # characters of one console line
MAX_TOTAL_BYTES = 256 << 20  # all targets' artifacts together; the oldest go first
CAPTURE_WAIT = 5.0  # seconds a screenshot may take (the probe's deadline may be over)
# an artifact's file name: the probe's UTC start time, to the millisecond
FILE_NAME = re.compile(r"\d{8}T\d{6}\.\d{3}Z(-\d+)?\.(png|log)")
SUFFIXES = {".png": "image/png", ".log": "text/plain; charset=utf-8"}


def state_dir(config: Config, env: Mapping[str, str] | None = None) -> Path | None:
    """The state directory (see the module doc): where push's key file is; None for an
    in-memory config without history: nowhere to keep artifacts."""
    key = key_path(config, env)
    return None if key is None else key.parent


def slug(name: str) -> str:
    """A target's directory name: safe characters of its name, then a hash of it."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60]
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{safe}-{digest}" if safe else digest


def artifact_file(root: Path, target: str, file: str) -> Path | None:
    """The artifact `file` of `target` under the state directory `root`, if it is one:
    only a name this module writes (no separator, no "..") in that target's directory."""
    if not FILE_NAME.fullmatch(file):
        return None
    path = root / DIRECTORY / slug(target) / file
    return path if path.is_file() else None


# --- what the page said ----------------------------------------------------------


def masked(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (a value a step typed) replaced by MASK."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _argument(arg: dict[str, Any]) -> str:
    if "value" in arg:
        value = arg["value"]
        return value if isinstance(value, str) else repr(value)
    return str(arg.get("description") or arg.get("type", ""))


class ConsoleLog:
    """The page's console, one line a message: "+123ms error: text" (since the page
    opened). Filled values (`secrets`) are masked in every line."""

    def __init__(self, page: PageSession, secrets: Iterable[str]) -> None:
        self._secrets = tuple(s for s in secrets if s)
        self._opened = trio.current_time()
        self.lines: list[str] = []
        self.dropped = 0
        page.on("Runtime.consoleAPICalled", self._console)
        page.on("Runtime.exceptionThrown", self._exception)
        page.on("Log.entryAdded", self._entry)

    def _add(self, level: str, text: str) -> None:
        if len(self.lines) >= MAX_LINES:
            self.dropped += 1
            return
        ms = (trio.current_time() - self._opened) * 1000
        line = " ".join(masked(text, self._secrets).split())[:MAX_LINE]
        self.lines.append(f"+{ms:.0f}ms {level}: {line}")

    def _console(self, p: dict[str, Any]) -> None:
        level = {"warning": "warn"}.get(p.get("type", "log"), p.get("type", "log"))
        self._add(level, " ".join(_argument(a) for a in p.get("args", [])))

    def _exception(self, p: dict[str, Any]) -> None:
        from .cdp import describe_exception

        self._add("uncaught", describe_exception(p.get("exceptionDetails", {})))

    def _entry(self, p: dict[str, Any]) -> None:
        entry = p.get("entry", {})
        url = f" ({entry['url']})" if entry.get("url") else ""
        self._add(entry.get("level", "info"), f"{entry.get('text', '')}{url}")

    def text(self) -> str:
        more = [f"... {self.dropped} more lines not kept"] if self.dropped else []
        return "".join(f"{line}\n" for line in [*self.lines, *more])


async def capture(page: PageSession) -> bytes | None:
    """The page as a PNG; None when Chromium cannot give one now. Shielded and bounded:
    it runs after a deadline too."""
    from .cdp import BrowserTrouble, CdpError

    with trio.CancelScope(shield=True), trio.move_on_after(CAPTURE_WAIT):
        try:
            shot = await page.send("Page.captureScreenshot", {"format": "png"})
            return base64.b64decode(shot.get("data", ""), validate=True) or None
        except (BrowserTrouble, CdpError, ValueError):
            return None
    return None


# --- kept on disk ----------------------------------------------------------------


def _stamp(ts: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


class ArtifactStore:
    """Writes failed probes' artifacts, one at a time in a worker thread, and prunes."""

    def __init__(self, root: Path | None, keep: int) -> None:
        self.root = root
        self.keep = keep
        self._writing = trio.CapacityLimiter(1)

    @property
    def enabled(self) -> bool:
        return self.root is not None and self.keep > 0

    async def save(
        self, target: str, ts: float, png: bytes | None, console: str
    ) -> tuple[str | None, str | None]:
        """Keep them; -> their paths relative to the state directory (None: not kept).
        Never raises: a disk that refuses is logged, and the probe line has no paths."""
        if not self.enabled:
            return None, None
        assert self.root is not None
        return await trio.to_thread.run_sync(
            self._save, self.root, self.keep, target, ts, png, console,
            limiter=self._writing, abandon_on_cancel=True,
        )  # fmt: skip

    @staticmethod
    def _save(
        root: Path, keep: int, target: str, ts: float, png: bytes | None, console: str
    ) -> tuple[str | None, str | None]:
        folder = root / DIRECTORY / slug(target)
        stem = _stamp(ts)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(1, 100):  # two failures of one target in one millisecond
                if not any((folder / f"{stem}{s}").exists() for s in SUFFIXES):
                    break
                stem = f"{_stamp(ts)}-{n}"
            written: list[str | None] = []
            for suffix, data in ((".png", png), (".log", console.encode())):
                if data is None:
                    written.append(None)
                    continue
                path = folder / f"{stem}{suffix}"
                path.write_bytes(data)
                written.append(str(path.relative_to(root)))
            _prune(folder, keep)
            _cap(root / DIRECTORY, MAX_TOTAL_BYTES)
        except OSError as exc:
            log.warning("%s: cannot keep a browser artifact: %s", folder, exc.strerror or exc)
            return None, None
        return written[0], written[1]


def _probes(folder: Path) -> dict[str, list[Path]]:
    """A target's artifacts by probe (file stem)."""
    found: dict[str, list[Path]] = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in folder.iterdir():
            if FILE_NAME.fullmatch(entry.name):
                found.setdefault(entry.name.rsplit(".", 1)[0], []).append(entry)
    return found


def _prune(folder: Path, keep: int) -> None:
    """The newest `keep` probes' artifacts stay (stems sort by time)."""
    probes = _probes(folder)
    for stem in sorted(probes)[:-keep]:
        for path in probes[stem]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _cap(top: Path, limit: int) -> None:
    """Delete the oldest probes' artifacts, over all targets, until they fit in `limit`."""
    files = []
    for folder in top.iterdir():
        if not folder.is_dir():
            continue
        for stem, paths in _probes(folder).items():
            size = sum(p.stat().st_size for p in paths)
            files.append((stem, size, paths))
    total = sum(size for _, size, _ in files)
    for _stem, size, paths in sorted(files, key=lambda item: item[0]):
        if total <= limit:
            return
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        total -= size
