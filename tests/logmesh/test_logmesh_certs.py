"""logmesh.certs: the CA and certificates `logmesh certs init` makes, and its re-run rules."""

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from logmesh.certs import DEFAULT_CLIENTS, DEFAULT_INSTANCES, init_certs, load_identity
from logmesh.errors import (
    CaKeyMissingError,
    CertMismatchError,
    CertMissingError,
    CertsDirError,
    InvalidCertNameError,
)


def _cert(directory: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((directory / f"{name}.pem").read_bytes())


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_instance_certificates_verify_as_servers_for_every_san(cert_dir: Path) -> None:
    store = Store([_cert(cert_dir, "ca")])
    for name in DEFAULT_INSTANCES:
        leaf = _cert(cert_dir, name)
        for subject in (
            x509.DNSName("localhost"),
            x509.DNSName(name),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ):
            verifier = PolicyBuilder().store(store).build_server_verifier(subject)
            chain = verifier.verify(leaf, [])
            assert chain[-1] == _cert(cert_dir, "ca")


def test_instance_certificate_is_server_and_client_with_instance_cn(cert_dir: Path) -> None:
    leaf = _cert(cert_dir, "storage-1")
    assert _cn(leaf) == "storage-1"
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "storage-1"}
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


def test_client_certificates_are_client_only_and_signed_by_ca(cert_dir: Path) -> None:
    ca = _cert(cert_dir, "ca")
    for name in (*DEFAULT_CLIENTS, "alice"):
        leaf = _cert(cert_dir, name)
        leaf.verify_directly_issued_by(ca)
        assert _cn(leaf) == name
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_ca_is_p256_and_may_only_sign_leaves(cert_dir: Path) -> None:
    ca = _cert(cert_dir, "ca")
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0


def test_keys_are_private_and_certificates_readable(cert_dir: Path) -> None:
    for path in cert_dir.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if path.suffix == ".key" else 0o644), path.name


def test_rerun_keeps_everything_byte_for_byte(tmp_path: Path) -> None:
    init_certs(tmp_path)
    before = _snapshot(tmp_path)
    report = init_certs(tmp_path)
    assert not report.ca_created and not report.created
    assert report.kept == [*DEFAULT_INSTANCES, *DEFAULT_CLIENTS]
    assert _snapshot(tmp_path) == before


def test_rerun_adds_missing_certificates_signed_by_existing_ca(tmp_path: Path) -> None:
    init_certs(tmp_path, instances=["storage-0"], clients=["root"])
    ca_before = (tmp_path / "ca.pem").read_bytes()
    (tmp_path / "root.pem").unlink()
    report = init_certs(tmp_path, instances=["storage-0", "storage-3"], clients=["root", "bob"])
    assert report.created == ["storage-3", "root", "bob"]
    assert (tmp_path / "ca.pem").read_bytes() == ca_before
    for name in ("storage-3", "root", "bob"):
        _cert(tmp_path, name).verify_directly_issued_by(_cert(tmp_path, "ca"))


def test_force_replaces_the_ca_and_reissues(tmp_path: Path) -> None:
    init_certs(tmp_path, instances=["storage-0"], clients=["root"])
    old_ca = _cert(tmp_path, "ca")
    report = init_certs(tmp_path, instances=["storage-0"], clients=["root"], force=True)
    assert report.ca_created and report.created == ["storage-0", "root"]
    assert _cert(tmp_path, "ca") != old_ca
    _cert(tmp_path, "storage-0").verify_directly_issued_by(_cert(tmp_path, "ca"))


def test_missing_ca_key_is_fine_until_something_must_be_signed(tmp_path: Path) -> None:
    init_certs(tmp_path, instances=["storage-0"], clients=["root"])
    (tmp_path / "ca.key").unlink()
    assert init_certs(tmp_path, instances=["storage-0"], clients=["root"]).kept
    with pytest.raises(CaKeyMissingError, match=r"ca\.key is missing.*--force"):
        init_certs(tmp_path, instances=["storage-0"], clients=["root", "bob"])
    assert not (tmp_path / "bob.pem").exists()


def test_certificates_without_any_ca_are_refused(tmp_path: Path) -> None:
    init_certs(tmp_path, instances=["storage-0"], clients=[])
    (tmp_path / "ca.key").unlink()
    (tmp_path / "ca.pem").unlink()
    with pytest.raises(CaKeyMissingError, match="no CA"):
        init_certs(tmp_path, instances=["storage-0"], clients=[])


def test_certificate_from_another_ca_is_refused(tmp_path: Path, other_cert_dir: Path) -> None:
    init_certs(tmp_path, instances=["storage-0"], clients=[])
    for suffix in (".pem", ".key"):
        (tmp_path / f"storage-0{suffix}").write_bytes(
            (other_cert_dir / f"storage-0{suffix}").read_bytes()
        )
    with pytest.raises(CertMismatchError, match=r"storage-0\.pem was not issued by the CA"):
        init_certs(tmp_path, instances=["storage-0"], clients=[])


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(CertsDirError, match=r"cannot write certificates to .*choose another --dir"):
        init_certs(not_a_dir / "certs")


@pytest.mark.parametrize("name", ["ca", "Storage", "a_b", "-x", "", "x" * 64, "../etc"])
def test_invalid_names_are_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidCertNameError, match="is not allowed"):
        init_certs(tmp_path / "certs", instances=[name], clients=[])
    assert not (tmp_path / "certs").exists()


def test_load_identity_names_the_command_for_a_missing_certificate(cert_dir: Path) -> None:
    ca_pem, key_pem, cert_pem = load_identity(cert_dir, "root")
    assert b"BEGIN CERTIFICATE" in ca_pem and b"PRIVATE KEY" in key_pem
    assert b"BEGIN CERTIFICATE" in cert_pem
    with pytest.raises(CertMissingError, match=r"logmesh certs init .*--names carol"):
        load_identity(cert_dir, "carol")
