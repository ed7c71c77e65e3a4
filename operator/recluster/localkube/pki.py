"""Certificates and keys of the local control plane, made with `cryptography`.

One CA signs everything: the apiserver's serving certificate and a client
certificate per identity. Identities are the ones a kubeadm cluster uses, so
the apiserver's authorizers treat each component as they would on a cluster:

- `kubernetes-admin` in `system:masters` (the admin kubeconfig);
- `system:kube-controller-manager` and `system:kube-scheduler` (bound by the
  apiserver's bootstrap RBAC);
- `system:node:<name>` in `system:nodes` (the node agent; the Node authorizer
  and the NodeRestriction admission plugin limit it to its own Node and Pods).

The service-account signing key pair is separate (tokens are JWTs, not X.509).
Keys are ECDSA P-256 (fast to make: a control plane starts in seconds).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
SERVICE_IP = "10.0.0.1"
"""The first address of the service range: the `kubernetes` Service's ClusterIP."""
APISERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Identity:
    """A client certificate's subject: user name (CN) and groups (O)."""

    user: str
    groups: tuple[str, ...] = ()


ADMIN = Identity("kubernetes-admin", ("system:masters",))
CONTROLLER_MANAGER = Identity("system:kube-controller-manager")
SCHEDULER = Identity("system:kube-scheduler")


def node_identity(node: str) -> Identity:
    return Identity(f"system:node:{node}", ("system:nodes",))


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


class Pki:
    """The files of one control plane's PKI, created once in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = KeyPair(directory / "ca.crt", directory / "ca.key")
        self.apiserver = KeyPair(directory / "apiserver.crt", directory / "apiserver.key")
        self.service_account_key = directory / "sa.key"
        self.service_account_pub = directory / "sa.pub"

    def ensure(self) -> Pki:
        """Create what is missing (a kept directory is reused, e.g. by `recluster dev`)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.ca.cert.exists() and self.ca.key.exists()):
            self._make_ca()
        if not self.apiserver.cert.exists():
            self._make_serving()
        if not self.service_account_key.exists():
            key = _key()
            _write(self.service_account_key, _pem_key(key), private=True)
            _write(
                self.service_account_pub,
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            )
        return self

    def client(self, identity: Identity) -> KeyPair:
        """The client certificate of an identity (made on first use)."""
        stem = identity.user.replace(":", "-")
        pair = KeyPair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        if not pair.cert.exists():
            name = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in identity.groups]
            name.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.user))
            key = _key()
            builder = self._signed(x509.Name(name), key).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            self._issue(builder, key, pair)
        return pair

    def ca_data(self) -> bytes:
        return self.ca.cert.read_bytes()

    # -- internals -------------------------------------------------------------------

    def _make_ca(self) -> None:
        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recluster-local-ca")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY * 10)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write(self.ca.key, _pem_key(key), private=True)
        _write(self.ca.cert, _pem_cert(cert))

    def _make_serving(self) -> None:
        key = _key()
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in APISERVER_NAMES]
        sans += [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address(SERVICE_IP)),
        ]
        builder = (
            self._signed(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]), key
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
        self._issue(builder, key, self.apiserver)

    def _signed(
        self, subject: x509.Name, key: ec.EllipticCurvePrivateKey
    ) -> x509.CertificateBuilder:
        ca = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )

    def _issue(
        self, builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey, pair: KeyPair
    ) -> None:
        ca_key = serialization.load_pem_private_key(self.ca.key.read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(pair.key, _pem_key(key), private=True)
        _write(pair.cert, _pem_cert(cert))
