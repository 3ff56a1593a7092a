"""The SSL contexts of HTTPS probes: one per distinct TLS setting, shared by every target
that has it, built (and so checked: every file read and loaded) when the config loads.

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

import httpx
from attrs import field, frozen

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
    """A target's TLS setting and the context built from it (compared by setting only)."""

    setting: TlsSetting
    context: ssl.SSLContext = field(eq=False, repr=False)


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
    with _lock:
        cache = _contexts if files else _defaults
        context = cache.get(setting)
        if context is None:
            context = cache[setting] = _build(setting, files)
    return Tls(setting, context)
