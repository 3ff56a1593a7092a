"""Push tokens: the secret in each push target's URL, stable across restarts and reloads
(users paste the URL into a crontab) and readable without the monitor (`push-urls`).

A target's token is its explicit `token`, or else HMAC-SHA256(key, its name), cut to 128
bits, URL-safe base64 (22 characters). The key is 32 random bytes, created once, 0600,
in a file beside the history (`<history>.push-key`; under systemd without a history path,
`$STATE_DIRECTORY/trio-monitor.push-key`; without history, `<config>.push-key`). So a
renamed target gets a new URL, the same name keeps its URL, and deleting the key file
gives every target a new token. Tokens never reach logs, JSON lines, the API or the
page: only `push-urls` prints them.

A request's token is looked up by its HMAC under a key of this process: a dict lookup
whose timing depends on a digest the caller cannot predict, not on how much of a real
token it guessed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from ..._config import Config, Target
from ..._errors import StoreError

KEY_BYTES = 32
TOKEN_BYTES = 16  # 128 bits
KEY_SUFFIX = ".push-key"
_CONTEXT = b"trio-monitor push token\0"


def key_path(config: Config, env: Mapping[str, str] | None = None) -> Path | None:
    """Where the config's push key lives; None: nowhere to keep one (an in-memory
    config without history)."""
    env = os.environ if env is None else env
    if config.store_path is not None:
        return Path(config.store_path).with_suffix(KEY_SUFFIX)
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0]) / f"trio-monitor{KEY_SUFFIX}"
    if config.path != "<memory>":
        return Path(config.path).with_suffix(KEY_SUFFIX)
    return None


def derive(key: bytes, name: str) -> str:
    digest = hmac.new(key, _CONTEXT + name.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:TOKEN_BYTES]).rstrip(b"=").decode()


def load_key(path: Path) -> bytes:
    """The key in `path`, created (0600, whole or not at all) if there is none."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(KEY_BYTES) + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs
            os.link(tmp, path)
        return _read_key(path)
    except OSError as exc:
        raise StoreError(
            f"{path}: cannot create the push token key: {exc.strerror or exc}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _read_key(path: Path) -> bytes:
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not text"
        raise StoreError(f"{path}: cannot read the push token key: {why or exc}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < TOKEN_BYTES:
        raise StoreError(
            f"{path}: not a push token key (delete it for a new one: every push URL changes)"
        )
    return key


class Keyring:
    """Tokens of push targets; the key file is read (or created) when first needed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._key: bytes | None = None
        self._lookup = secrets.token_bytes(32)  # this process's, for `digest`

    def key(self) -> bytes:
        if self._key is None:
            # nowhere to keep one: this run's own (its URLs change at every start)
            self._key = secrets.token_bytes(KEY_BYTES) if self.path is None else load_key(self.path)
        return self._key

    def token(self, target: Target) -> str:
        explicit: str | None = target.spec.token
        return explicit if explicit is not None else derive(self.key(), target.name)

    def digest(self, token: str) -> bytes:
        """What the index is keyed by (see the module doc)."""
        return hmac.new(self._lookup, token.encode(), hashlib.sha256).digest()
