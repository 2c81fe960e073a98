"""Score history for the cluster page's charts, downsampled on the server.

The poller stores a sample per host on each change and otherwise once a
minute (``ha.SAMPLE_EVERY``): a week is ~10,000 samples per host. The chart
gets a fixed number of intervals per range instead, each with the *lowest*
score seen in it, so a short drop (an agent restarted by a step) stays
visible at any zoom. An interval without a sample carries the last value on
while it is recent (the score holds until it changes), and is a gap when
the poller was away. Run steps that overlap the range come along as marks.
"""
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db.models import Q
from django.utils import timezone

from .ha import SAMPLE_EVERY
from .models import HaSample, RunStep, StepStatus

# range -> (length, interval): about 250-340 points per host whatever the range.
RANGES = {
    "hour": (timedelta(hours=1), timedelta(seconds=15)),
    "day": (timedelta(days=1), timedelta(minutes=5)),
    "week": (timedelta(days=7), timedelta(minutes=30)),
}
# A value is carried over empty intervals for at most this long after its sample.
CARRY = 2 * SAMPLE_EVERY
MAX_MARKS = 500
UNFINISHED = (StepStatus.RUNNING, StepStatus.WAITING)


def score_history(cluster, hosts, range_name, now=None):
    """{range, start, end, step, x, hosts: [{id, name, score}], marks} with times in Unix seconds."""
    length, interval = RANGES[range_name]
    now = now or timezone.now()
    step = int(interval.total_seconds())
    end = (int(now.timestamp()) // step + 1) * step
    start = end - int(length.total_seconds())
    count = (end - start) // step
    x = [start + i * step for i in range(count)]
    lowest = {h.pk: [None] * count for h in hosts}
    last_at = {h.pk: [None] * count for h in hosts}  # when the interval's latest sample was taken
    # The last sample before the range gives each host its starting value.
    start_dt = datetime.fromtimestamp(start, tz=dt_timezone.utc) - CARRY
    rows = (HaSample.objects.filter(host_id__in=lowest, at__gte=start_dt).order_by()
            .values_list("host_id", "at", "score"))
    before = {}
    for host_id, at, score in rows.iterator(chunk_size=5000):
        t = at.timestamp()
        i = int((t - start) // step)
        if i < 0:
            if host_id not in before or before[host_id][0] < t:
                before[host_id] = (t, score)
            continue
        if i >= count or score is None:
            continue
        values, seen = lowest[host_id], last_at[host_id]
        if values[i] is None or score < values[i]:
            values[i] = score
        if seen[i] is None or t > seen[i][0]:
            seen[i] = (t, score)
    carry_seconds = CARRY.total_seconds()
    for host_id, values in lowest.items():
        held = before.get(host_id)
        for i in range(count):
            if last_at[host_id][i] is not None:
                held = last_at[host_id][i]
            elif held is not None and x[i] - held[0] <= carry_seconds and x[i] <= now.timestamp():
                values[i] = held[1]
    return {
        "range": range_name, "start": start, "end": end, "step": step, "x": x,
        "hosts": [{"id": h.pk, "name": h.name, "score": lowest[h.pk]} for h in hosts],
        "marks": step_marks(cluster, start_dt + CARRY, now),
    }


def step_marks(cluster, start, now):
    """The run steps that ran on the cluster during [start, now], oldest first."""
    steps = (RunStep.objects.filter(run__cluster=cluster, started_at__isnull=False, started_at__lte=now)
             .filter(Q(finished_at__gte=start) | Q(finished_at__isnull=True, status__in=UNFINISHED))
             .order_by("started_at")
             .values("run_id", "run__runbook__name", "order", "title", "host_id", "status", "started_at",
                     "finished_at"))[:MAX_MARKS]
    return [{"run": s["run_id"], "runbook": s["run__runbook__name"], "order": s["order"], "title": s["title"],
             "host": s["host_id"], "status": s["status"], "t": s["started_at"].timestamp(),
             "end": s["finished_at"].timestamp() if s["finished_at"] else None} for s in steps]
