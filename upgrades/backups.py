"""Engine backups that survive the engine VM: copied into ENGINE_BACKUP_DIR, checked, recorded.

he-upgrade's ``engine-backup`` writes its file in the engine VM, the very VM the run
upgrades. Two worker-side steps (``Fetch`` in the runbook, an ssh step with a ``fetch``
spec) keep it: ``space`` runs ``df`` in the VM and looks at the portal's directory before
the backup; ``copy`` reads the file over SFTP on the pinned SSH connection, hashing the
bytes as they come, compares with ``sha256sum`` in the VM, and records an ``EngineBackup``
(audited). Admins download them from the cluster page.
"""
import hashlib
import os
import shutil
from pathlib import Path

import paramiko
from django.conf import settings

from . import audit
from .models import EngineBackup
from .remote.base import CommandStopped
from .remote.ssh import SshTarget, build_command

CHUNK = 1 << 20


def cluster_dir(cluster):
    """The cluster's own directory under ENGINE_BACKUP_DIR (made on first use)."""
    path = Path(settings.ENGINE_BACKUP_DIR) / f"cluster-{cluster.pk}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def path_of(backup):
    return Path(settings.ENGINE_BACKUP_DIR) / backup.file_name


def open_download(user, backup):
    """The file of ``backup`` for ``user`` to download (the page and the API), audited;
    Http404 when the file is gone. The caller has checked that ``user`` administers the cluster."""
    from django.http import Http404

    path = path_of(backup)
    if not path.is_file():
        raise Http404(f"The file of engine backup #{backup.pk} is gone from {path.parent}.")
    audit.record(user, "engine_backup.download", backup, sha256=backup.sha256)
    return path


def space_needed(cluster):
    """ENGINE_BACKUP_MIN_FREE_MB, or twice the cluster's last backup if that is larger."""
    last = EngineBackup.objects.filter(cluster=cluster).order_by("-created_at").first()
    return max(settings.ENGINE_BACKUP_MIN_FREE_MB * 2**20, 2 * last.size if last else 0)


def run_fetch(step, run, pool, out, beat):
    """An ssh step with a ``fetch`` spec; (exit code, error or "") as ``run_ssh``."""
    fetch = step.spec["fetch"]
    session = pool.session(SshTarget.for_engine_vm(run.cluster))
    if fetch["mode"] == "space":
        return check_space(session, run, step.spec["command"], fetch["path"], out, beat)
    return copy_backup(session, run, fetch["path"], out, beat)


def _df_available(lines):
    """Bytes available from ``df -P -B1 PATH``: the last line's fourth column."""
    fields = lines[-1].split() if lines else []
    return int(fields[3]) if len(fields) >= 6 and fields[3].isdigit() else None


def check_space(session, run, command, path, out, beat):
    lines = []

    def on_line(stream, text):
        out.line(stream, text)
        if stream == "stdout":
            lines.append(text)

    result = session.run(command, on_line, timeout=120, stop=beat.stop)
    if result.exit_status != 0:
        return result.exit_status, f"exited with {result.exit_status}"
    in_vm = _df_available(lines)
    if in_vm is None:
        return result.exit_status, "df's output does not show the space available"
    here = cluster_dir(run.cluster)
    portal = shutil.disk_usage(here).free
    need = space_needed(run.cluster)
    out.line("system", f"engine VM: {in_vm} bytes free in {path}; portal: {portal} bytes free in {here}; "
                       f"each side needs {need} bytes")
    short = []
    if in_vm < need:
        short.append(f"the engine VM has {in_vm}")
    if portal < need:
        short.append(f"the portal has {portal}")
    if short:
        return result.exit_status, f"not enough free space for the engine backup: {' and '.join(short)} bytes " \
                                   f"free, {need} needed (ENGINE_BACKUP_MIN_FREE_MB)"
    return result.exit_status, ""


def copy_backup(session, run, path, out, beat):
    """Copy, hash, compare, record; a mismatch keeps nothing."""
    here = cluster_dir(run.cluster)
    name = f"run{run.pk}-{os.path.basename(path)}"
    final, part = here / name, here / (name + ".part")
    digest = hashlib.sha256()
    copied = 0
    try:
        sftp = paramiko.SFTPClient.from_transport(session.connect())
        try:
            size = sftp.stat(path).st_size
            if shutil.disk_usage(here).free < size:
                return None, f"the portal's backup directory {here} has less than {size} bytes free"
            out.line("system", f"copying {path} ({size} bytes) over SFTP to {final}")
            with sftp.open(path, "rb") as remote, open(part, "wb") as local:
                remote.prefetch(size)
                while chunk := remote.read(CHUNK):
                    if beat.stop.is_set():
                        raise CommandStopped("the copy was stopped")
                    local.write(chunk)
                    digest.update(chunk)
                    copied += len(chunk)
        finally:
            sftp.close()
    except (OSError, paramiko.SSHException, EOFError) as exc:
        part.unlink(missing_ok=True)
        return None, f"copying {path} off the engine VM failed: {exc}"
    except CommandStopped:
        part.unlink(missing_ok=True)
        raise
    ours = digest.hexdigest()
    out.line("system", f"copied {copied} bytes; sha256 of the copy: {ours}")
    said = []
    result = session.run(build_command("sha256sum {path}", path=path),
                         lambda stream, text: (out.line(stream, text), said.append(text)),
                         timeout=600, stop=beat.stop)
    theirs = said[0].split()[0] if result.exit_status == 0 and said else ""
    if copied != size or theirs != ours:
        part.unlink(missing_ok=True)
        return result.exit_status, (f"the copy does not match the file in the engine VM "
                                    f"({copied} of {size} bytes; sha256 there {theirs or '?'}, here {ours}): "
                                    "nothing kept")
    os.replace(part, final)
    final.chmod(0o600)
    backup = EngineBackup.objects.create(
        cluster=run.cluster, run=run, file_name=str(final.relative_to(settings.ENGINE_BACKUP_DIR)),
        source_path=path, size=copied, sha256=ours)
    audit.record(None, "engine_backup.copy", backup, run=run.pk, source=path, size=copied, sha256=ours)
    out.line("system", f"the same sha256 in the engine VM: kept as {backup.file_name}")
    return result.exit_status, ""
