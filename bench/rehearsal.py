"""Rehearsing he-upgrade on a twin of a 3-host cluster: the time from "Rehearse" to a
result, and how far the rehearsal's duration estimate is from the real (lab) run's.

A 4.5 lab a build behind (`--outdated`, speed 60) stands in for the real cluster. The
rehearsal is executed in this process (as `manage.py runbook rehearse --sync`): snapshot,
twin lab, plan on the twin, he-upgrade there, teardown. Then the real run of the same
plan on the stand-in lab (as `runbook start --sync`); its simulated duration is what the
estimate (the twin run's simulated duration) is compared with.
Usage: python bench/rehearsal.py [--smoke]   (smoke: the rehearsal only, no real run)
"""
import sys
import tempfile
import time
from pathlib import Path

from harness import SMOKE, phase, report  # also puts the repository on sys.path
from he_upgrade import SPEED, setup_django, start_lab


def main():
    workdir = Path(tempfile.mkdtemp(prefix="bench-rehearsal-"))
    with phase("start the stand-in lab", 180):
        lab = start_lab(workdir, 0)
    try:
        setup_django(workdir, lab.manifest["ssh_key"])
        import os
        from django.conf import settings
        from django.contrib.auth import get_user_model

        settings.REHEARSAL_DIR = Path(os.environ["HEPORTAL_DATA_DIR"]) / "r"
        settings.REHEARSAL_LAB_SPEED = SPEED
        from upgrades import jobs, rehearsal, services, twin
        from upgrades.models import RunStatus
        from upgrades.remote.ssh import SshPool

        user = get_user_model().objects.create_user("bench", is_superuser=True)
        password = workdir / "engine.password"
        password.write_text(lab.manifest["engine"]["password"])
        cluster = services.import_cluster(name="real", engine=lab.manifest["engine"],
                                          password_file=str(password), hosts=lab.manifest["hosts"],
                                          engine_vm=lab.manifest["engine_vm"], poll_interval=10 / SPEED)
        with phase("read the stand-in cluster", 120), SshPool() as pool:
            twin.take(cluster, pool)  # the HA poller's reads, done here: the plan is made on them
        cluster.refresh_from_db()

        started = time.perf_counter()
        with phase("rehearse he-upgrade on a twin", 900):
            found = rehearsal.request(cluster=cluster, slug="he-upgrade", params={}, user=user, queue=False)
            rehearsal.execute(found.pk)
        to_result = time.perf_counter() - started
        found.refresh_from_db()
        assert found.status == "succeeded", found.error
        twin_wall = (found.run.finished_at - found.run.started_at).total_seconds()
        if SMOKE:
            print(f"bench smoke: rehearsal succeeded in {to_result:.1f} s")
            return 0

        with phase("the real run of the same plan", 900):
            with SshPool() as pool:
                twin.take(cluster, pool)
            sim_before = lab.state()["now"]
            run = services.start_run(cluster=cluster, slug="he-upgrade", params={}, user=user,
                                     acknowledge=True, queue=False)
            jobs.advance_run(run.pk)
            run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, run.error
        real_sim = lab.state()["now"] - sim_before
    finally:
        lab.stop()
    estimate = found.simulated_seconds
    rows = [
        ("from Rehearse to the result (snapshot, twin up, run, teardown)", f"{to_result:.1f} s", "—"),
        ("of which the twin's run", f"{twin_wall:.1f} s", "—"),
        ("estimate (the twin run's simulated time)", f"{estimate:.0f} simulated s", "—"),
        ("the real (lab) run's simulated time", f"{real_sim:.0f} simulated s", "—"),
        ("estimate's error", f"{estimate - real_sim:+.0f} s ({100 * (estimate - real_sim) / real_sim:+.1f} %)", "—"),
    ]
    report("Rehearsal of he-upgrade on a twin, 3 hosts at speed 60", rows, NOTES)


NOTES = """
`bench/rehearsal.py`: a 4.5 lab a build behind (3 hosts, speed 60) as the real cluster;
the rehearsal and then the real run executed in-process, SQLite, Redis. Both labs run at
speed 60, so the estimate's error is the difference between two lab runs of the same plan
(the twin's model equals the stand-in's); against real hosts the error is the lab's model
against reality, which this cannot measure. What limits the estimate here: a wait step
re-reads the HA state every 0.5 s at least, 30 simulated seconds at speed 60, so each of
the run's waits may end up to 30 simulated seconds later in one lab than in the other;
summed over the run's wait steps, a few hundred seconds either way (one run: +20 %).
"""

if __name__ == "__main__":
    sys.exit(main())
