"""The SSL contexts of probes (https://, tls://): one per distinct TLS setting, shared by
every target that has it, built (and so checked: every file read and loaded) when the
config loads. `TlsLoader` reads a target's TLS keys (ca_file, client_cert, client_key,
each unset one inherited from [monitor]) into one.

A setting is (verify_tls, ca_file, client_cert, client_key), plus the ALPN protocols it
offers: httpcore sets ALPN on the context it connects with, so an `http2 = true` target
gets a context of its own, and HTTP/1.1 targets never offer h2. A setting also carries a
digest of its files' contents: a reload after a certificate was renewed in place builds
a new context (and the targets using it count as changed), an unchanged one shares the
old context and so keeps its pools.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import httpx
from attrs import field, frozen

from .._config import expand_path

if TYPE_CHECKING:
    from .._config import MonitorSection

_ALPN_HTTP2 = ("h2", "http/1.1")


class TlsFileError(ValueError):
    """A TLS file that cannot be used: `key` is the config key naming it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@frozen
class TlsSetting:
    """What an SSL context is built from. Equal settings share one context."""

    verify: bool
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    http2: bool = False
    digest: str = ""  # of the files' contents, read when the config loaded


@frozen
class Tls:
    """A target's TLS setting and the context built from it (compared by setting only).

    A setting without files cannot fail to build, so its context is built when a
    connection first needs it: loading the CA bundle is a twentieth of every start, and
    a config of http:// targets never needs it."""

    setting: TlsSetting
    _built: ssl.SSLContext | None = field(eq=False, repr=False, alias="built")

    @property
    def context(self) -> ssl.SSLContext:
        if self._built is not None:
            return self._built
        with _lock:
            context = _defaults.get(self.setting)
            if context is None:
                context = _defaults[self.setting] = _build(self.setting, {})
        return context


_lock = threading.Lock()  # a reload loads its config in a worker thread
_contexts: weakref.WeakValueDictionary[TlsSetting, ssl.SSLContext] = weakref.WeakValueDictionary()
_defaults: dict[TlsSetting, ssl.SSLContext] = {}  # file-less ones: kept for the whole run


def _read(key: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise TlsFileError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise TlsFileError(key, f"{path} is empty")
    return data


def _build(setting: TlsSetting, files: dict[str, bytes]) -> ssl.SSLContext:
    if not setting.verify:
        context = httpx.create_ssl_context(verify=False)
    elif setting.ca_file is not None:
        try:
            context = ssl.create_default_context(cafile=setting.ca_file)
        except ssl.SSLError as exc:
            raise TlsFileError(
                "ca_file", f"no CA certificate in {setting.ca_file} ({exc.reason or exc})"
            ) from None
    else:
        context = httpx.create_ssl_context(verify=True)
    if setting.client_cert is not None and setting.client_key is not None:
        if b"-----BEGIN CERTIFICATE-----" not in files["client_cert"]:
            raise TlsFileError("client_cert", f"no PEM certificate in {setting.client_cert}")
        if b"ENCRYPTED" in files["client_key"]:
            raise TlsFileError(
                "client_key", f"{setting.client_key} is encrypted: use an unencrypted key"
            )
        try:
            # a password callback that gives none: an encrypted key must never prompt
            context.load_cert_chain(setting.client_cert, setting.client_key, password=b"")
        except ssl.SSLError as exc:
            raise TlsFileError(
                "client_key",
                f"cannot use {setting.client_key} with {setting.client_cert}"
                f" ({exc.reason or exc}): not a PEM private key, or not the certificate's",
            ) from None
    if setting.http2:
        context.set_alpn_protocols(list(_ALPN_HTTP2))
    return context


def load_tls(
    verify: bool,
    ca_file: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    *,
    http2: bool = False,
) -> Tls:
    """The context for a setting: built now if no equal one (same files, same contents)
    is alive. Raises TlsFileError naming the key of the file at fault."""
    named = {"ca_file": ca_file if verify else None, "client_cert": client_cert}
    named["client_key"] = client_key
    files = {key: _read(key, path) for key, path in named.items() if path is not None}
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(hashlib.sha256(files[key]).digest())
    setting = TlsSetting(
        verify=verify,
        ca_file=named["ca_file"],
        client_cert=client_cert,
        client_key=client_key,
        http2=http2,
        digest=digest.hexdigest() if files else "",
    )
    if not files:
        return Tls(setting, None)
    with _lock:
        context = _contexts.get(setting)
        if context is None:
            context = _contexts[setting] = _build(setting, files)
    return Tls(setting, context)


class TlsKeys(Protocol):
    """A target section's TLS file keys (HTTP's, tls://'s)."""

    @property
    def ca_file(self) -> str | None: ...
    @property
    def client_cert(self) -> str | None: ...
    @property
    def client_key(self) -> str | None: ...


TlsArgs = tuple[bool, str | None, str | None, str | None, bool]


class TlsLoader:
    """SSL contexts for one config load, each distinct setting loaded once (10,000 targets
    with one ca_file read it once), each problem reported once per key path."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._loaded: dict[TlsArgs, Tls | TlsFileError] = {}
        self._reported: set[str] = set()

    def for_target(
        self,
        t: TlsKeys,
        m: MonitorSection,
        where: str,
        verify: bool,
        problems: list[str],
        *,
        http2: bool = False,
    ) -> Tls:
        """The context of a target's keys: ca_file from the target, else [monitor];
        client_cert and client_key from the target if it sets either, else from
        [monitor] (a pair never mixes the two)."""
        if t.client_cert is not None or t.client_key is not None:
            cert, key, pair_source = t.client_cert, t.client_key, where
        else:
            cert, key, pair_source = m.client_cert, m.client_key, "monitor"
        ca_file = t.ca_file if t.ca_file is not None else m.ca_file
        sources = {
            "ca_file": where if t.ca_file is not None else "monitor",
            "client_cert": pair_source,
            "client_key": pair_source,
        }
        return self.load((verify, ca_file, cert, key, http2), sources, problems)

    def load(self, args: TlsArgs, sources: Mapping[str, str], problems: list[str]) -> Tls:
        """`sources`: for each file key, the prefix of the key path it was set at."""
        verify, ca_file, cert, key, http2 = args
        paths = {"ca_file": ca_file, "client_cert": cert, "client_key": key}
        for name, path in paths.items():
            if path is not None:
                paths[name] = expand_path(path, f"{sources[name]}.{name}", self._env, problems)
        for name, other in (("client_cert", "client_key"), ("client_key", "client_cert")):
            if paths[name] is not None and paths[other] is None:
                self._report(f"{sources[name]}.{other}: required with {name}", problems)
                return load_tls(verify)
        args = (verify, paths["ca_file"], paths["client_cert"], paths["client_key"], http2)
        if args not in self._loaded:
            try:
                self._loaded[args] = load_tls(*args[:4], http2=http2)
            except TlsFileError as exc:
                self._loaded[args] = exc
        loaded = self._loaded[args]
        if isinstance(loaded, TlsFileError):
            self._report(f"{sources[loaded.key]}.{loaded.key}: {loaded}", problems)
            return load_tls(verify)
        return loaded

    def _report(self, line: str, problems: list[str]) -> None:
        if line not in self._reported:
            self._reported.add(line)
            problems.append(line)
