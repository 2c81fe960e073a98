"""A real OpenLDAP server (Debian's slapd) for the directory login tests.

Started by the test as a plain process on a free loopback port, with its own
slapd.conf and mdb database in a temporary folder, and loaded with a small
LDIF through ldapadd. A missing slapd or ldapadd is a failure, not a skip.
"""
import datetime
import ipaddress
import shutil
import subprocess
import time

import ldap
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import die_with_parent, free_port

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "slapd root secret"
BIND_DN = f"cn=portal,ou=services,{SUFFIX}"
BIND_PASSWORD = "portal-bind-Pa55-7f3c9e"  # distinctive: tests look for it in pages and logs
USERS = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ADMINS_GROUP = f"cn=he-admins,{GROUPS}"
OPS_A_GROUP = f"cn=ops-a,{GROUPS}"
AUDITORS_GROUP = f"cn=auditors,{GROUPS}"
PASSWORDS = {"alice": "alice directory password", "bob": "bob directory password",
             "carol": "carol directory password", "dave": "dave directory password"}

CONF = """\
{tls}
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {folder}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "{suffix}"
rootdn "{root_dn}"
rootpw "{root_password}"
directory {folder}/db
# Anonymous may only bind: the portal must search with its own bind DN.
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
"""


def person(uid, name):
    return f"""dn: uid={uid},{USERS}
objectClass: inetOrgPerson
uid: {uid}
cn: {name}
sn: {name.split()[-1]}
givenName: {name.split()[0]}
mail: {uid}@example.org
userPassword: {PASSWORDS[uid]}
"""


def group(dn, *members):
    # groupOfNames needs a member: the usual placeholder keeps a group that loses its last person.
    lines = [f"dn: {dn}", "objectClass: groupOfNames", f"cn: {dn.split(',')[0][3:]}", f"member: cn=nobody,{SUFFIX}"]
    lines += [f"member: uid={uid},{USERS}" for uid in members]
    return "\n".join(lines) + "\n"


LDIF = "\n".join([
    f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n",
    f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n",
    f"dn: {BIND_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: portal\n"
    f"userPassword: {BIND_PASSWORD}\n",
    f"dn: {USERS}\nobjectClass: organizationalUnit\nou: people\n",
    f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
    person("alice", "Alice Admin"), person("bob", "Bob Operator"), person("carol", "Carol Clash"),
    person("dave", "Dave Nobody"),
    group(ADMINS_GROUP, "alice"), group(OPS_A_GROUP, "bob"), group(AUDITORS_GROUP, "bob"),
])


def make_ca(folder, name):
    """A CA of the test's own: (its certificate's path, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    path = folder / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_server_cert(folder, ca_key, ca_cert):
    """slapd's certificate for 127.0.0.1, signed by the CA: (certificate path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


class Slapd:
    """``tls``: also ldaps:// (``ldaps_uri``) and StartTLS, with a certificate of ``ca_file``'s CA."""

    def __init__(self, folder, tls=False):
        for tool in ("slapd", "ldapadd"):
            assert shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin"), \
                f"{tool} is missing: run scripts/bootstrap.sh (Debian packages slapd, ldap-utils)"
        self.folder = folder
        self.port = free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}/"
        self.ldaps_uri = f"ldaps://127.0.0.1:{free_port()}/" if tls else None
        self.proc = None
        (folder / "db").mkdir()
        tls_conf = ""
        if tls:
            self.ca_file, ca_key, ca_cert = make_ca(folder, "test-directory-ca")
            cert, key = make_server_cert(folder, ca_key, ca_cert)
            tls_conf = f"TLSCACertificateFile {self.ca_file}\nTLSCertificateFile {cert}\nTLSCertificateKeyFile {key}"
        (folder / "slapd.conf").write_text(CONF.format(folder=folder, suffix=SUFFIX, root_dn=ROOT_DN,
                                                       root_password=ROOT_PASSWORD, tls=tls_conf))

    def start(self):
        slapd = shutil.which("slapd") or "/usr/sbin/slapd"
        # -d 0: in the foreground, so it is our child and stops with the test.
        listen = " ".join(uri for uri in (self.uri, self.ldaps_uri) if uri)
        self.proc = subprocess.Popen([slapd, "-f", str(self.folder / "slapd.conf"), "-h", listen, "-d", "0"],
                                     stdout=subprocess.DEVNULL, stderr=open(self.folder / "slapd.log", "ab"),
                                     preexec_fn=die_with_parent)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.admin().unbind_s()
                return self
            except ldap.SERVER_DOWN:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"slapd did not start: {(self.folder / 'slapd.log').read_text()[-2000:]}")
                time.sleep(0.05)

    def load(self, ldif=LDIF):
        subprocess.run(["ldapadd", "-x", "-H", self.uri, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
                       input=ldif.encode(), check=True, capture_output=True)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def admin(self):
        conn = ldap.initialize(self.uri)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        return conn

    def remove_member(self, group_dn, uid):
        conn = self.admin()
        try:
            conn.modify_s(group_dn, [(ldap.MOD_DELETE, "member", [f"uid={uid},{USERS}".encode()])])
        finally:
            conn.unbind_s()

    def env(self, **extra):
        """The portal's environment for this directory (docs/directory.md)."""
        return {"LDAP_SERVER_URI": self.uri, "LDAP_BIND_DN": BIND_DN, "LDAP_BIND_PASSWORD": BIND_PASSWORD,
                "LDAP_USER_SEARCH_BASE": USERS, "LDAP_USER_FILTER": "(uid=%(user)s)",
                "LDAP_GROUP_SEARCH_BASE": GROUPS, "LDAP_GROUP_TYPE": "groupOfNames", **extra}
