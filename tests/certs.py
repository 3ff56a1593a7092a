"""Certificates for loopback TLS servers, made with `cryptography`: a root, an
intermediate and a leaf for 127.0.0.1/localhost, each with the validity a test asks for
(trustme cannot date an intermediate)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl

from attrs import frozen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, not_before, not_after, *, ca: bool, sans=()):
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@frozen
class Chain:
    root_pem: bytes
    chain_pem: bytes  # leaf, then intermediate
    key_pem: bytes

    def server_context(self, tmp_path) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert_file, key_file = tmp_path / "chain.pem", tmp_path / "key.pem"
        cert_file.write_bytes(self.chain_pem)
        key_file.write_bytes(self.key_pem)
        ctx.load_cert_chain(cert_file, key_file)
        return ctx

    def trust(self, ctx: ssl.SSLContext) -> None:
        ctx.load_verify_locations(cadata=self.root_pem.decode())


def make_chain(
    *,
    leaf_from: dt.timedelta = dt.timedelta(days=-30),
    leaf_until: dt.timedelta = dt.timedelta(days=90),
    intermediate_until: dt.timedelta = dt.timedelta(days=365),
    subject: str = "localhost",
) -> Chain:
    """Root -> intermediate -> leaf (127.0.0.1, localhost), valid from/until now + ...
    (the time of this call, not of the import: a suite that runs long before a test
    made its certificates stale by that much)."""
    now = dt.datetime.now(dt.UTC)
    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    long_ago, far = now - dt.timedelta(days=3650), now + dt.timedelta(days=3650)
    root = _cert("Test Root", root_key, "Test Root", root_key, long_ago, far, ca=True)
    mid = _cert(
        "Test Intermediate", mid_key, "Test Root", root_key, long_ago,
        now + intermediate_until, ca=True,
    )  # fmt: skip
    leaf = _cert(
        subject, leaf_key, "Test Intermediate", mid_key, now + leaf_from, now + leaf_until,
        ca=False,
        sans=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
    )  # fmt: skip
    return Chain(
        root_pem=_pem(root),
        chain_pem=_pem(leaf) + _pem(mid),
        key_pem=leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
