"""Runbooks are data: ordered steps. Importing one does no I/O."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    command: str
    action: str = "ssh"
    timeout: int = 600


@dataclass(frozen=True)
class RunbookSpec:
    slug: str
    name: str
    description: str
    steps: tuple[Step, ...] = field(default_factory=tuple)


DIAGNOSTIC = RunbookSpec(
    slug="diagnostic",
    name="Diagnostic",
    description="Read-only checks on one host: identity, OS release and hosted-engine status.",
    steps=(
        Step("identity", "Host identity", "hostname; cat /etc/redhat-release; uname -a; uptime"),
        Step("ha-status", "Hosted-engine status", "hosted-engine --vm-status"),
    ),
)

REGISTRY = {spec.slug: spec for spec in (DIAGNOSTIC,)}


def get_runbook(slug):
    return REGISTRY[slug]
