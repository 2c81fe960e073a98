"""The runbook registry: slug -> Runbook, one module per runbook (see docs/runbooks.md).

Importing a runbook module does no I/O. ``register`` also serves tests,
which add runbooks of their own.
"""
from .deploy_host import DEPLOY_HOST
from .diagnostic import DIAGNOSTIC
from .he_upgrade import HE_UPGRADE
from .host_os_upgrade import HOST_OS_UPGRADE
from .maintenance import MAINTENANCE_GLOBAL, MAINTENANCE_LOCAL, MAINTENANCE_NONE

REGISTRY = {}


def register(runbook):
    REGISTRY[runbook.slug] = runbook
    return runbook


for _runbook in (DIAGNOSTIC, MAINTENANCE_GLOBAL, MAINTENANCE_LOCAL, MAINTENANCE_NONE, HE_UPGRADE):
    register(_runbook)
for _runbook in (DEPLOY_HOST, HOST_OS_UPGRADE):
    register(_runbook)


class UnknownRunbook(KeyError):
    def __str__(self):
        return f"there is no runbook {self.args[0]!r} (manage.py runbook list shows them)"


def get_runbook(slug):
    try:
        return REGISTRY[slug]
    except KeyError:
        raise UnknownRunbook(slug) from None


def all_runbooks():
    return sorted(REGISTRY.values(), key=lambda r: r.slug)
