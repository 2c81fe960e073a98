"""Read-only checks on one host."""
from .base import Param, Runbook, Ssh

DIAGNOSTIC = Runbook(
    slug="diagnostic",
    name="Diagnostic",
    description="Read-only checks on one host: identity, OS release and hosted-engine status.",
    scope="host",
    emergency=True,
    params=(Param("host", "Host", kind="host"),),
    steps=(
        Ssh("identity", "Host identity", "hostname; cat /etc/redhat-release; uname -a; uptime"),
        Ssh("ha-status", "Hosted-engine status", "hosted-engine --vm-status"),
    ),
)
