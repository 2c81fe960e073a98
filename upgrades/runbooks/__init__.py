"""The runbook registry: slug -> Runbook, one module per runbook (see docs/runbooks.md).

Importing a runbook module does no I/O. ``register`` also serves tests,
which add runbooks of their own.
"""
from .deploy_host import DEPLOY_HOST
from .diagnostic import DIAGNOSTIC
from .engine_vm_migrate import ENGINE_VM_MIGRATE
from .he_upgrade import HE_UPGRADE
from .host_os_upgrade import HOST_OS_UPGRADE
from .install_cleanup import FAILED_INSTALL_CLEANUP
from .lockspace import LOCKSPACE_RECOVERY
from .maintenance import MAINTENANCE_GLOBAL, MAINTENANCE_LOCAL, MAINTENANCE_NONE
from .metadata import CLEAN_METADATA
from .resume_deploy import RESUME_DEPLOY
from .return_to_normal import RETURN_TO_NORMAL

REGISTRY = {}


def register(runbook):
    REGISTRY[runbook.slug] = runbook
    return runbook


for _runbook in (DIAGNOSTIC, MAINTENANCE_GLOBAL, MAINTENANCE_LOCAL, MAINTENANCE_NONE, HE_UPGRADE):
    register(_runbook)
for _runbook in (ENGINE_VM_MIGRATE, DEPLOY_HOST, HOST_OS_UPGRADE):
    register(_runbook)
for _runbook in (LOCKSPACE_RECOVERY, CLEAN_METADATA, FAILED_INSTALL_CLEANUP, RESUME_DEPLOY):
    register(_runbook)
register(RETURN_TO_NORMAL)

# Procedures of the howto that are not runbooks: (name, why and where to read), listed by
# the cluster page's runbook list and ``manage.py runbook list``.
OUT_OF_SCOPE = (
    ("Migrate an existing engine into a hosted engine",
     "Out of scope for now. The howto (\"Migrate existing setup to a VM\"): like a fresh install, but a backup "
     "of the existing engine is restored in the VM instead of a fresh engine-setup; for full details see "
     "Migrate_to_Hosted_Engine."),
)


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
