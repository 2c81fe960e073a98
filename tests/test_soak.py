"""Soak: 20 websocket viewers on a demo-like stack (daphne, a worker, the lab)
through busy and idle spells. `make test` runs a short version (SOAK_SECONDS,
default 40); `make soak` runs five minutes. Every idle spell outlasts
redis-py's default 5 s socket timeout, which used to close idle sockets."""
import asyncio
import os

import aiohttp
import pytest

from tests.conftest import LAB_SPEED
from tests.factories import make_run
from tests.test_live_output import lab_host
from tests.viewers import ClusterViewer, RunViewer, session_cookie
from upgrades.services import enqueue_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.soak]

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "40"))
RUN_VIEWERS, CLUSTER_VIEWERS = 16, 4
BURST = 3000  # lines as fast as the host prints them
IDLE = 12  # real seconds between bursts


def test_twenty_viewers_through_busy_and_idle_spells_lose_nothing(live_portal, lab_cluster, make_user):
    user = make_user("operator")
    cycles = max(2, int(SOAK_SECONDS // (IDLE + 1)))
    # Busy: a burst, then a trickle of 10 lines; idle: nothing for IDLE seconds.
    cycle = f"seq {BURST}; for i in 1 2 3 4 5 6 7 8 9 10; do echo trickle $i; sleep 3; done; sleep {IDLE * LAB_SPEED}"
    run = make_run(user, lab_host(lab_cluster), ["; ".join([cycle] * cycles)])
    step = run.steps.get()
    cookie = session_cookie(user)
    run_viewers = [RunViewer(live_portal, run.pk, cookie) for _ in range(RUN_VIEWERS)]
    cluster_viewers = [ClusterViewer(live_portal, lab_cluster.pk, cookie) for _ in range(CLUSTER_VIEWERS)]
    log_before = live_portal.log.read_text()

    async def soak():
        async with aiohttp.ClientSession() as session:
            watching = [asyncio.create_task(v.follow(session, timeout=SOAK_SECONDS * 3 + 60)) for v in run_viewers]
            holding = [asyncio.create_task(v.hold(session, SOAK_SECONDS)) for v in cluster_viewers]
            await asyncio.sleep(1)
            await asyncio.to_thread(enqueue_run, run)
            await asyncio.gather(*watching, *holding)

    asyncio.run(soak())
    step.refresh_from_db()
    assert step.status == "succeeded"
    stored = list(step.output.order_by("seq").values_list("seq", "text"))
    expected = [str(n) for n in range(1, BURST + 1)] + [f"trickle {i}" for i in range(1, 11)]
    assert [text for _, text in stored] == expected * cycles
    for viewer in run_viewers:
        assert viewer.closes == [] and viewer.connects == 1
        assert viewer.lines[step.pk] == stored
    for viewer in cluster_viewers:
        assert viewer.closes == []
        assert viewer.messages and viewer.messages[0]["type"] == "ha.update"
    new_log = live_portal.log.read_text()[len(log_before):]
    assert "Exception inside application" not in new_log
