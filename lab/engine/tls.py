"""CA and server certificate for the fake engine, kept in the state dir.

The portal and ovirtsdk4 verify the engine over HTTPS with a CA file, just as
they would with the real engine's `/etc/pki/ovirt-engine/ca.pem`, so the lab
issues its own CA once and a server certificate for the loopback names.
"""
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..private import write_private

CA_FILE = "engine-ca.pem"
CA_KEY_FILE = "engine-ca.key"
CERT_FILE = "engine-cert.pem"
KEY_FILE = "engine-cert.key"


def ensure_certificates(state_dir: Path, host: str,
                        extra_names=()) -> tuple[Path, Path, Path]:
    """Return (ca_file, cert_file, key_file), creating what is missing.

    The CA survives restarts so a manifest copied elsewhere stays valid; the
    server certificate is reissued when the listen address is not among its
    SANs (e.g. the lab moved the engine to another loopback address).
    """
    ca_path, ca_key_path = state_dir / CA_FILE, state_dir / CA_KEY_FILE
    cert_path, key_path = state_dir / CERT_FILE, state_dir / KEY_FILE
    if not (ca_path.exists() and ca_key_path.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _build_ca(ca_key)
        _write_key(ca_key_path, ca_key)
        ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        cert_path.unlink(missing_ok=True)
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())

    names = _san_names(host, [n for n in extra_names if n])
    if not (cert_path.exists() and key_path.exists()) or not _covers(cert_path, names):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _build_server(key, ca_key, ca_cert, names)
        _write_key(key_path, key)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca_path, cert_path, key_path


def _san_names(host: str, dns_names: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    names += [x509.DNSName(name) for name in dns_names]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if x509.DNSName(host) not in names:
            names.append(x509.DNSName(host))
    else:
        if str(address) != "127.0.0.1":
            names.append(x509.IPAddress(address))
    return names


def _covers(cert_path: Path, names: list[x509.GeneralName]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return all(name in san for name in names)


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    # Backdated a day so a client whose clock is slightly behind still accepts it.
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650)


def _build_ca(key) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lab.example.com"),
        x509.NameAttribute(NameOID.COMMON_NAME, "engine.lab.example.com CA"),
    ])
    not_before, not_after = _validity()
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _build_server(key, ca_key, ca_cert, names) -> x509.Certificate:
    not_before, not_after = _validity()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lab.example.com"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _write_key(path: Path, key) -> None:
    write_private(path, key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
