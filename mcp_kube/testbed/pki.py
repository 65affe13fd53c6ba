"""Certificates and keys for one testbed control plane, made fresh at every ``up``.

One CA signs the API server's serving certificate (SANs for loopback and the in-cluster
service names), KWOK's kubelet serving certificate, and client certificates whose CN is the
user and O the groups, exactly as Kubernetes' x509 authenticator reads them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Identity", "Pki", "make_pki"]

_VALID = dt.timedelta(days=365)


@dataclass(frozen=True)
class Identity:
    """A client identity: user name and groups, as the API server will see them."""

    user: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path  # signs and verifies service account tokens
    sa_pub: Path
    clients: dict[str, tuple[Path, Path]]  # identity user -> (cert, key)

    @classmethod
    def load(cls, folder: Path) -> Pki:
        """The PKI written to ``folder`` by ``make_pki``."""
        clients = {
            crt.stem: (crt, crt.with_suffix(".key"))
            for crt in sorted(folder.glob("*.crt"))
            if crt.stem not in {"ca", "apiserver"}
        }
        return cls(
            ca_cert=folder / "ca.crt",
            ca_key=folder / "ca.key",
            serving_cert=folder / "apiserver.crt",
            serving_key=folder / "apiserver.key",
            sa_key=folder / "sa.key",
            sa_pub=folder / "sa.pub",
            clients=clients,
        )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _sign(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server_sans: list[x509.GeneralName] | None = None,
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
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
    usages = []
    if server_sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(server_sans), critical=False)
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path, identities: list[Identity]) -> Pki:
    """Write a CA, serving certs, a service-account key pair and one cert per identity."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("mcp-kube-testbed-ca")
    ca_cert = _sign(ca_name, ca_key, ca_name, ca_key, ca=True)
    _write_key(folder / "ca.key", ca_key)
    _write_cert(folder / "ca.crt", ca_cert)

    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        x509.DNSName("localhost"),
    ]
    sans += [
        x509.DNSName(n)
        for n in (
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    ]
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = _sign(_name("kube-apiserver"), serving_key, ca_name, ca_key, server_sans=sans)
    _write_key(folder / "apiserver.key", serving_key)
    _write_cert(folder / "apiserver.crt", serving)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(folder / "sa.key", sa_key)
    (folder / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    for ident in identities:
        key = ec.generate_private_key(ec.SECP256R1())
        # kwok's kubelet endpoint serves with its client cert too, so give it loopback SANs.
        server_sans = sans if ident.user == "kwok-controller" else None
        cert = _sign(
            _name(ident.user, ident.groups),
            key,
            ca_name,
            ca_key,
            client=True,
            server_sans=server_sans,
        )
        cert_path, key_path = folder / f"{ident.user}.crt", folder / f"{ident.user}.key"
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
    return Pki.load(folder)
