"""Certificates for mutual TLS: one CA, a certificate per service instance, client certificates.

`init_certs` makes DIR/ca.pem, DIR/ca.key and DIR/<name>.pem, DIR/<name>.key. Keys are ECDSA
P-256 (what grpc's BoringSSL accepts everywhere), written 0600. Instance certificates serve as
server AND client (a storage node dials its peers with the same identity); the CN is the
instance id, and the SANs cover localhost, 127.0.0.1, ::1 and the instance name as compose host
name. Client certificates (`root`, `nobody`, `operator`, ...) carry only the CN.

Re-running is idempotent: an existing CA is reused (replaced only with `force`), missing
certificates are added, existing ones are kept after checking they chain to the CA.
This module may not talk to the network, and never overwrites a key without `force`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from logmesh.errors import (
    CaKeyMissingError,
    CertMismatchError,
    CertMissingError,
    CertsDirError,
    InvalidCertNameError,
)

DEFAULT_INSTANCES = (
    "storage-0",
    "storage-1",
    "storage-2",
    "gateway-0",
    "authz-0",
    "discovery-0",
    "envoy-0",
)
# root: full access in the default policy; nobody: authenticated but allowed nothing;
# operator: the Admin API identity (DESIGN §5).
DEFAULT_CLIENTS = ("root", "nobody", "operator")

CA_VALIDITY_DAYS = 3650
LEAF_VALIDITY_DAYS = 825
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_LOOPBACK_IPS = ("127.0.0.1", "::1")


@dataclass
class CertsReport:
    """What `init_certs` did, for the CLI to print."""

    ca_created: bool = False
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None  # None: ca.key is absent, nothing can be signed
    key_path: Path

    def signing_key(self, name: str) -> ec.EllipticCurvePrivateKey:
        if self.key is None:
            raise CaKeyMissingError(
                f"{self.key_path} is missing, so {name} cannot be signed: restore it, or run "
                "with --force to make a new CA and reissue all certificates"
            )
        return self.key


def validate_name(name: str) -> str:
    """`name` if it can be a CN, a DNS label and a file name; else InvalidCertNameError."""
    if name == "ca" or not _NAME_RE.match(name):
        raise InvalidCertNameError(
            f"certificate name {name!r} is not allowed: use lower-case letters, digits and '-' "
            "(a DNS label, at most 63 characters), and not 'ca'"
        )
    return name


def init_certs(
    directory: Path,
    instances: Sequence[str] = DEFAULT_INSTANCES,
    clients: Sequence[str] = DEFAULT_CLIENTS,
    *,
    force: bool = False,
) -> CertsReport:
    """Make (or complete) the certificate directory; see the module docstring for the rules."""
    for name in (*instances, *clients):
        validate_name(name)
    overlap = set(instances) & set(clients)
    if overlap:
        raise InvalidCertNameError(
            f"{sorted(overlap)} named both as instance and as client: name each once"
        )
    _ensure_dir(directory)
    report = CertsReport()
    ca = None if force else _load_ca(directory)
    if ca is None:
        ca = _make_ca(directory)
        report.ca_created = True
    for name in instances:
        _ensure_leaf(directory, ca, name, server=True, force=report.ca_created, report=report)
    for name in clients:
        _ensure_leaf(directory, ca, name, server=False, force=report.ca_created, report=report)
    return report


def _ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CertsDirError(
            f"cannot write certificates to {directory}: {e.strerror or e}; choose another --dir "
            "or fix its permissions"
        ) from None


def _load_ca(directory: Path) -> _Ca | None:
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if not cert_path.exists() and not key_path.exists():
        if any(directory.glob("*.pem")):
            raise CaKeyMissingError(
                f"{directory} has certificates but no CA (ca.pem, ca.key): new certificates "
                "would not chain to the old ones; run with --force to make a new CA and "
                "reissue all certificates"
            )
        return None
    if not cert_path.exists():
        raise CaKeyMissingError(
            f"{cert_path} is missing but {key_path} is there: restore ca.pem, or run with "
            "--force to make a new CA and reissue all certificates"
        )
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if not key_path.exists():
        # Allowed while nothing needs signing: a deployment may keep ca.key offline.
        return _Ca(cert, None, key_path)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise CaKeyMissingError(
            f"{key_path} does not belong to {cert_path}: restore the matching pair, or run with "
            "--force to make a new CA"
        )
    return _Ca(cert, key, key_path)


def _make_ca(directory: Path) -> _Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "logmesh CA")])
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = builder.sign(key, hashes.SHA256())
    _write_pair(directory, "ca", cert, key)
    return _Ca(cert, key, directory / "ca.key")


def _ensure_leaf(
    directory: Path, ca: _Ca, name: str, *, server: bool, force: bool, report: CertsReport
) -> None:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    if not force and cert_path.exists() and key_path.exists():
        _check_issued_by(cert_path, ca)
        report.kept.append(name)
        return
    ca_key = ca.signing_key(name)
    key = ec.generate_private_key(ec.SECP256R1())
    _write_pair(directory, name, _make_leaf(ca.cert, ca_key, name, key, server=server), key)
    report.created.append(name)


def _make_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    name: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    server: bool,
) -> x509.Certificate:
    now = _now()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LEAF_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(_server_sans(name), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _server_sans(name: str) -> x509.SubjectAlternativeName:
    dns = [x509.DNSName(n) for n in dict.fromkeys(("localhost", name))]
    ips = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in _LOOPBACK_IPS]
    return x509.SubjectAlternativeName([*dns, *ips])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _check_issued_by(cert_path: Path, ca: _Ca) -> None:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        raise CertMismatchError(
            f"{cert_path} was not issued by the CA in {cert_path.parent}: delete it to have it "
            "reissued, or run with --force to reissue everything"
        ) from None


def _write_pair(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first: a crash between the two writes leaves a key without a certificate, which the
    # next run reissues, never a certificate whose key is lost.
    _write_atomic(directory / f"{name}.key", key_pem, mode=0o600)
    _write_atomic(directory / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        # Created with its final mode: a key is never readable by others, not even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise CertsDirError(
            f"cannot write {path}: {e.strerror or e}; fix the directory's permissions"
        ) from None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def load_identity(directory: Path, name: str) -> tuple[bytes, bytes, bytes]:
    """(ca.pem, <name>.key, <name>.pem) as bytes, for grpc credentials.

    Raises CertMissingError naming the command that makes the missing file."""
    paths = (directory / "ca.pem", directory / f"{name}.key", directory / f"{name}.pem")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise CertMissingError(
            f"missing {', '.join(missing)}: run `logmesh certs init --dir {directory}` "
            f"(add --instances {name} or --names {name} if it is not a default name)"
        )
    ca_pem, key_pem, cert_pem = (p.read_bytes() for p in paths)
    return ca_pem, key_pem, cert_pem
