"""Adding a cluster from the pages: the engine's CA, its login, its hosted-engine hosts.

1. The engine's CA is read where oVirt publishes it, ``/ovirt-engine/services/
   pki-resource?resource=ca-certificate&format=X509-PEM-CA`` (PKIResourceServlet,
   no login), without checking TLS: there is nothing to check it with yet. The
   admin compares its SHA-256 fingerprint with the engine's own before the portal
   trusts it; or pastes the CA. From then on every request checks the engine's
   certificate against it (ovirtsdk4 and urllib alike).
2. The login is tried with that CA: a wrong password or a CA that is not the one
   that signed the engine's certificate is said here, and nothing is stored.
3. On 4.x the hosts with hosted-engine configured are read from the API
   (ovirtsdk4); a 3.x engine speaks API v3 only, which ovirtsdk4 cannot, so its
   hosts are entered by hand.

Each remote call is bounded (``TIMEOUT``). Everything written goes through
``upgrades.services.clusters``, checked by ``upgrades.inventory.validate`` as an
inventory file is.
"""
import base64
import hashlib
import os
import re
import ssl
import tempfile
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID
from django.conf import settings
from django.core.exceptions import ValidationError

from .remote.base import EngineError
from .remote.engine_api import API_V3_ONLY, EngineClient

TIMEOUT = 15
API_PATH = "/ovirt-engine/api"
CA_PATH = "/ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA"
# Where to compare the fingerprint: the engine's CA on the engine VM.
CA_ON_ENGINE = "openssl x509 -in /etc/pki/ovirt-engine/ca.pem -noout -fingerprint -sha256"
MAX_CA_BYTES = 64 * 1024
V3_REASON = ("This engine speaks API v3 only (oVirt 3.x): ovirtsdk4 speaks v4, so the portal cannot list "
             "its hosts. Enter the hosted-engine hosts by hand (the web admin's Hosts tab, or "
             "hosted-engine --vm-status on a host, lists them).")
SSH_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


class OnboardingError(Exception):
    """What went wrong, in words the admin can act on."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


# The engine URL ---------------------------------------------------------------

def api_url(text):
    """The engine's API URL from what the admin typed: the engine's address, its
    web admin URL or the API URL itself. ValidationError when it is not https."""
    text = (text or "").strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise ValidationError("The engine URL must be https://ENGINE (the engine VM's name), "
                              "e.g. https://engine.example.com")
    return urlunsplit(("https", parts.netloc, API_PATH, "", ""))


def ca_url(engine_api_url):
    parts = urlsplit(engine_api_url)
    return f"https://{parts.netloc}{CA_PATH}"


# The CA -----------------------------------------------------------------------

@dataclass(frozen=True)
class EngineCa:
    pem: str
    fingerprint: str  # SHA-256 of the DER, as openssl prints it (AA:BB:...)
    subject: str
    not_after: str


def parse_ca(pem):
    """The CA certificate in ``pem`` (one PEM certificate, a CA), or ValidationError."""
    text = (pem or "").strip()
    if not text:
        raise ValidationError("Paste the engine's CA certificate (PEM, -----BEGIN CERTIFICATE-----).")
    if len(text) > MAX_CA_BYTES:
        raise ValidationError(f"That is more than {MAX_CA_BYTES // 1024} KB: not one CA certificate.")
    try:
        cert = x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        raise ValidationError("That is not a PEM certificate (-----BEGIN CERTIFICATE----- ...).") from None
    try:
        is_ca = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca
    except x509.ExtensionNotFound:
        is_ca = cert.issuer == cert.subject  # an old self-signed CA without the extension
    if not is_ca:
        raise ValidationError(f"The certificate of {cert.subject.rfc4514_string()} is not a CA: "
                              "give the engine's CA (ca.pem), not its server certificate.")
    der = cert.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    return EngineCa(pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                    fingerprint=":".join(digest[i:i + 2] for i in range(0, len(digest), 2)),
                    subject=cert.subject.rfc4514_string(), not_after=cert.not_valid_after_utc.strftime("%Y-%m-%d"))


def fetch_ca(engine_api_url, *, timeout=TIMEOUT):
    """The CA the engine publishes. TLS is not checked (nothing to check it with yet):
    the admin's comparison of the fingerprint is what makes it trusted."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = ca_url(engine_api_url)
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            body = response.read(MAX_CA_BYTES + 1).decode("ascii", "replace")
    except urllib.error.HTTPError as exc:
        raise OnboardingError(f"The engine answered HTTP {exc.code} for its CA ({url}). Is this an oVirt "
                              "engine, and is it up? You can also paste its CA.") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise OnboardingError(f"Cannot read the engine's CA from {url}: {reason}. Check the address, "
                              "and that the portal reaches the engine on port 443; or paste its CA.") from None
    try:
        return parse_ca(body)
    except ValidationError as exc:
        raise OnboardingError(f"What {url} answered is not a CA certificate ({exc.messages[0]})") from None


def save_ca(pem):
    """Keep the CA where EngineClient reads it: a file named by its fingerprint in the
    data folder (certificates are public; the name makes two clusters of one engine,
    or two processes, write the same bytes). Returns its path."""
    ca = parse_ca(pem)
    folder = Path(settings.DATA_DIR) / "engine-ca"
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = folder / f"{ca.fingerprint.replace(':', '').lower()[:32]}.pem"
    if not path.exists() or path.read_text() != ca.pem:
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as tmp:
            tmp.write(ca.pem)
        os.chmod(tmp.name, 0o644)
        os.replace(tmp.name, path)
    return str(path)


# The login and the hosts -------------------------------------------------------

@dataclass(frozen=True)
class FoundHost:
    name: str
    address: str
    status: str  # the engine's host status (up, maintenance, non_responsive...)
    he_active: bool
    he_score: int | None
    local_maintenance: bool

    @property
    def he_state(self):
        if self.local_maintenance:
            return "local maintenance"
        score = self.he_score if self.he_score is not None else "unknown"
        return f"HA {'active' if self.he_active else 'not active'}, score {score}"


@dataclass(frozen=True)
class EngineFound:
    """What the engine said: its API ("v4"/"v3"), version and, on v4, its HE hosts."""

    api: str
    version: str
    hosts: tuple = ()
    reason: str = ""  # why there is no list (v3)


def examine_engine(url, username, password, ca_file, *, timeout=TIMEOUT):
    """Log in with this CA and password and list the hosted-engine hosts, or raise
    OnboardingError saying what to fix (wrong password, CA that does not match...)."""
    try:
        with EngineClient(url, username, password, ca_file, timeout=timeout) as client:
            info = client.test_connection()
            hosts = client.list_hosts()
    except EngineError as exc:
        if API_V3_ONLY in exc.message or _sso_missing(url, ca_file, timeout):
            # A 3.x engine: no SSO, so ovirtsdk4 cannot log in; its v3 entry point takes basic auth.
            return EngineFound(api="v3", version=_v3_login(url, username, password, ca_file, timeout),
                               reason=V3_REASON)
        raise OnboardingError(_engine_message(exc.message, username)) from None
    found = [FoundHost(name=h.name, address=h.address, status=h.status, he_active=h.hosted_engine.active,
                       he_score=h.hosted_engine.score, local_maintenance=h.hosted_engine.local_maintenance)
             for h in hosts if h.hosted_engine is not None and h.hosted_engine.configured]
    return EngineFound(api="v4", version=info.version, hosts=tuple(sorted(found, key=lambda h: h.name)))


def _engine_message(message, username):
    """The EngineClient's words, said for this page (no CA file path: the CA is the one shown)."""
    if "refused the login" in message:
        return f"The engine refused the login of {username}: the user name or the password is wrong."
    if message.startswith("TLS check"):
        detail = re.search(r"failed \((.*)\)\. Check", message)
        return ("The engine's certificate does not check out against this CA: it is not the CA that signed "
                "the engine's certificate, or the URL does not use a name the certificate is for"
                + (f" ({detail[1]})." if detail else "."))
    text = message[0].upper() + message[1:]
    return text if text.endswith(".") else text + "."


def _sso_missing(url, ca_file, timeout):
    """A 3.x engine has no SSO: its token endpoint answers 404 (4.x answers 400 to an empty request)."""
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=ca_file)
    request = urllib.request.Request(f"https://{parts.netloc}/ovirt-engine/sso/oauth/token", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    except (OSError, ValueError):
        return False


def _v3_login(url, username, password, ca_file, timeout):
    """Check a 3.x engine's login (basic auth on the v3 entry point) and return its version."""
    context = ssl.create_default_context(cafile=ca_file)
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}", "Accept": "application/xml"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            version = ET.fromstring(response.read()).find("product_info/version")
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise OnboardingError(f"The engine refused the login of {username}: the user name or the password "
                                  "is wrong.") from None
        raise OnboardingError(f"The engine answered HTTP {exc.code} to the login of {username}.") from None
    except ssl.SSLError as exc:
        raise OnboardingError(f"TLS check of the engine failed ({exc.reason}): the CA is not the one that "
                              "signed the engine's certificate, or the URL does not use the engine's name.") from None
    except (OSError, ValueError, ET.ParseError) as exc:
        raise OnboardingError(f"Cannot log in to the engine: {getattr(exc, 'reason', None) or exc}.") from None
    if version is None:
        return "3.x"
    return ".".join(version.get(part, "0") for part in ("major", "minor", "build"))


def examine_cluster(cluster, *, timeout=TIMEOUT):
    """examine_engine with what the portal keeps for ``cluster``."""
    if not cluster.engine_url:
        raise OnboardingError(f"Cluster {cluster.name} has no engine URL.")
    return examine_engine(cluster.engine_url, cluster.engine_username, cluster.engine_password(),
                          cluster.engine_ca_file or None, timeout=timeout)


def examine_with_pem(url, username, password, pem, *, timeout=TIMEOUT):
    """examine_engine with a CA not saved yet (a temporary file for libcurl)."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as ca:
        ca.write(pem)
        ca.flush()
        return examine_engine(url, username, password, ca.name, timeout=timeout)


# Hosts entered by hand ----------------------------------------------------------

def parse_host_lines(text):
    """Hand-entered hosts, one a line: ``NAME ADDRESS [PORT] [USER]`` → inventory host
    entries (checked by inventory.validate), or ValidationError naming the line."""
    hosts, problems = [], []
    for number, line in enumerate((text or "").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if not 2 <= len(fields) <= 4:
            problems.append(f"line {number}: write NAME ADDRESS [PORT] [USER], e.g. he1.example.com 192.0.2.11 22 root")
            continue
        entry = {"name": fields[0], "address": fields[1]}
        if len(fields) > 2:
            if not fields[2].isdigit():
                problems.append(f"line {number}: the port must be a number")
                continue
            entry["port"] = int(fields[2])
        if len(fields) > 3:
            entry["ssh_user"] = fields[3]
        hosts.append(entry)
    if problems:
        raise ValidationError(problems)
    if not hosts:
        raise ValidationError("Enter at least one host.")
    return hosts


def check_ssh_user(user):
    if not SSH_USER.fullmatch(user or ""):
        raise ValidationError(f"{user!r} is not a user name (lower case letters, digits, _ and -).")
    return user
