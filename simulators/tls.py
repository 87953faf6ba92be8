"""A throw-away certificate authority and server certificate for the TLS simulators (LDAPS, SMTPS, HTTPS).

Production peers present certificates signed by the customer's CA and widip checks them with
`WIDIP_CA_FILE`; tests and the demo do exactly the same against a CA generated here, so the client's
certificate validation is exercised rather than switched off.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_VALIDITY_DAYS = 30


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA to trust (`ca_file`) and the server's certificate chain and key."""

    ca_file: str
    cert_file: str
    key_file: str

    def server_context(self) -> ssl.SSLContext:
        """A server-side context for stdlib servers (asyncio, socketserver)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context trusting only our CA."""
        return ssl.create_default_context(cafile=self.ca_file)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "WIDIP simulators"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _san(hostnames) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def generate_tls_files(directory: str | Path, hostnames=DEFAULT_HOSTNAMES, *,
                       days: int = DEFAULT_VALIDITY_DAYS) -> TlsFiles:
    """Write ca.pem, server.pem and server.key into `directory` (created if needed) and return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("WIDIP Test CA")
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(hostnames[0])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(_san(hostnames), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(str(directory / "ca.pem"), str(directory / "server.pem"), str(directory / "server.key"))
    Path(files.ca_file).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    Path(files.cert_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = Path(files.key_file)
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)
    return files


def load_or_generate(directory: str | Path, hostnames=DEFAULT_HOSTNAMES) -> TlsFiles:
    """Reuse the files already in `directory` (the demo restarts) or create them."""
    directory = Path(directory)
    files = TlsFiles(str(directory / "ca.pem"), str(directory / "server.pem"), str(directory / "server.key"))
    if all(Path(p).exists() for p in (files.ca_file, files.cert_file, files.key_file)):
        cert = x509.load_pem_x509_certificate(Path(files.cert_file).read_bytes())
        if cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1):
            return files
    return generate_tls_files(directory, hostnames)
