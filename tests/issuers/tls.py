"""Test helper: mint a throwaway CA and a leaf certificate for a local HTTPS server.

Nothing here is used outside tests; keys are EC P-256 because they are fast to generate.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TLSMaterial:
    """Paths and facts about one generated CA + leaf pair; it holds no live objects."""

    ca_pem: Path
    ca_key_pem: Path
    leaf_pem: Path
    key_pem: Path
    leaf_der: bytes
    leaf_sha256: str
    leaf_subject: str
    leaf_issuer: str
    leaf_not_after: datetime


def _name(common_name: str) -> x509.Name:
    """Build a small subject name; does not try to look like a real CA's."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "trustportal tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_tls_material(
    directory: Path,
    *,
    ca_name: str = "trustportal test CA",
    common_name: str = "localhost",
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    valid_days: int = 30,
) -> TLSMaterial:
    """Write ca.pem, leaf.pem and leaf.key into ``directory``; does not start any server.

    The leaf carries the SANs given (DNS names and IP addresses) and serverAuth EKU, so
    Python's default client context accepts it when the CA file is the trust store.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = _name(ca_name)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=valid_days + 1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = directory / "ca.pem"
    ca_key_pem = directory / "ca.key"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca_key_pem.write_bytes(_private_pem(ca_key))
    return _issue_leaf(
        directory,
        ca_pem=ca_pem,
        ca_key_pem=ca_key_pem,
        common_name=common_name,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        valid_days=valid_days,
    )


def renew_leaf(material: TLSMaterial, directory: Path, *, valid_days: int = 30) -> TLSMaterial:
    """A new leaf (new key, new serial) from the same CA for the same names: a routine renewal."""
    ca = x509.load_pem_x509_certificate(material.ca_pem.read_bytes())
    leaf = x509.load_pem_x509_certificate(material.leaf_pem.read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    common_name = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    directory.mkdir(parents=True, exist_ok=True)
    renewed = _issue_leaf(
        directory,
        ca_pem=material.ca_pem,
        ca_key_pem=material.ca_key_pem,
        common_name=str(common_name),
        dns_names=sans.get_values_for_type(x509.DNSName),
        ip_addresses=[str(ip) for ip in sans.get_values_for_type(x509.IPAddress)],
        valid_days=valid_days,
    )
    assert renewed.leaf_issuer == ca.subject.rfc4514_string()
    return renewed


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue_leaf(
    directory: Path,
    *,
    ca_pem: Path,
    ca_key_pem: Path,
    common_name: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    valid_days: int,
) -> TLSMaterial:
    """Sign a fresh leaf with the CA in ca_pem/ca_key_pem; writes leaf.pem and leaf.key."""
    now = datetime.now(UTC).replace(microsecond=0)
    ca_cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_pem.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    ca_subject = ca_cert.subject
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    not_after = now + timedelta(days=valid_days)
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    leaf_pem = directory / "leaf.pem"
    key_pem = directory / "leaf.key"
    leaf_pem.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(_private_pem(leaf_key))
    leaf_der = leaf_cert.public_bytes(serialization.Encoding.DER)
    return TLSMaterial(
        ca_pem=ca_pem,
        ca_key_pem=ca_key_pem,
        leaf_pem=leaf_pem,
        key_pem=key_pem,
        leaf_der=leaf_der,
        leaf_sha256=hashlib.sha256(leaf_der).hexdigest(),
        leaf_subject=leaf_cert.subject.rfc4514_string(),
        leaf_issuer=ca_subject.rfc4514_string(),
        leaf_not_after=not_after,
    )
