"""Score history for the cluster page's charts, downsampled on the server.

The poller stores a sample per host on each change and otherwise once a
minute (``ha.SAMPLE_EVERY``): a week is ~10,000 samples per host. The chart
gets a fixed number of intervals per range instead, each with the *lowest*
score seen in it, so a short drop (an agent restarted by a step) stays
visible at any zoom. In the last hour (intervals shorter than the samples'
spacing) an interval without a sample carries the last value on while it is
recent (the score holds until it changes); in longer ranges the database
groups the samples and an empty interval is a gap: the poller was away. Run
steps that overlap the range come along as marks, and grouped per run: a run
of 100 steps is one band on the chart (its steps on hover, or zoomed to it).
"""
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db.models import ExpressionWrapper, Func, IntegerField, Min, Q, Value
from django.utils import timezone

from .ha import SAMPLE_EVERY
from .models import HaSample, RunStatus, RunStep, StepStatus

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
    start_dt = datetime.fromtimestamp(start, tz=dt_timezone.utc) - CARRY
    if interval > CARRY:
        _lowest_in_database(lowest, start, step, count)
    else:
        _lowest_carried(lowest, start, step, x, now, start_dt)
    marks = step_marks(cluster, start_dt + CARRY, now)
    return {
        "range": range_name, "start": start, "end": end, "step": step, "x": x,
        "hosts": [{"id": h.pk, "name": h.name, "score": lowest[h.pk]} for h in hosts],
        "marks": marks, "runs": run_bands(marks),
    }


class Epoch(Func):
    """Unix seconds of a datetime column (SQLite and PostgreSQL, the two databases the portal runs on)."""

    output_field = IntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)",
                           **extra)

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="CAST(EXTRACT(EPOCH FROM %(expressions)s) AS BIGINT)",
                           **extra)


def _lowest_in_database(lowest, start, step, count):
    """Day and week: intervals longer than CARRY, so nothing is carried (an empty
    interval means the poller was away longer than that) and the database does
    the grouping: a week of one-a-minute samples is 336 rows per host, not 10,080."""
    start_dt = datetime.fromtimestamp(start, tz=dt_timezone.utc)
    end_dt = datetime.fromtimestamp(start + step * count, tz=dt_timezone.utc)
    interval = ExpressionWrapper((Epoch("at") - Value(start)) / Value(step), output_field=IntegerField())
    rows = (HaSample.objects.filter(host_id__in=lowest, at__gte=start_dt, at__lt=end_dt, score__isnull=False)
            .annotate(interval=interval).values("host_id", "interval").annotate(low=Min("score"))
            .order_by().values_list("host_id", "interval", "low"))
    for host_id, i, low in rows:
        if 0 <= i < count:
            lowest[host_id][i] = low


def _lowest_carried(lowest, start, step, x, now, start_dt):
    """The last hour: 15-second intervals, shorter than the poller's one-a-minute
    samples, so a value is carried on over the empty ones (few rows: read them)."""
    count = len(x)
    last_at = {host_id: [None] * count for host_id in lowest}  # the interval's latest sample
    # The last sample before the range gives each host its starting value.
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


def step_marks(cluster, start, now):
    """The run steps that ran on the cluster during [start, now], oldest first."""
    steps = (RunStep.objects.filter(run__cluster=cluster, started_at__isnull=False, started_at__lte=now)
             .filter(Q(finished_at__gte=start) | Q(finished_at__isnull=True, status__in=UNFINISHED))
             .order_by("started_at")
             .values("run_id", "run__runbook__name", "run__status", "order", "title", "host_id", "status",
                     "started_at", "finished_at"))[:MAX_MARKS]
    return [{"run": s["run_id"], "runbook": s["run__runbook__name"], "run_status": s["run__status"],
             "order": s["order"], "title": s["title"], "host": s["host_id"], "status": s["status"],
             "label": StepStatus(s["status"]).label, "t": s["started_at"].timestamp(),
             "end": s["finished_at"].timestamp() if s["finished_at"] else None} for s in steps]


def run_bands(marks):
    """One band per run, from its first step's start to its last step's end (None:
    still going), with the hosts its steps ran on (None: on the cluster) and how
    many steps are in ``marks``: what the chart draws instead of every step."""
    bands = {}
    for m in marks:
        band = bands.get(m["run"])
        if band is None:
            band = bands[m["run"]] = {"run": m["run"], "runbook": m["runbook"], "status": m["run_status"],
                                      "label": RunStatus(m["run_status"]).label, "t": m["t"], "end": m["end"],
                                      "hosts": [], "steps": 0}
        band["t"] = min(band["t"], m["t"])
        if band["end"] is not None:
            band["end"] = None if m["end"] is None else max(band["end"], m["end"])
        if m["host"] not in band["hosts"]:
            band["hosts"].append(m["host"])
        band["steps"] += 1
    return sorted(bands.values(), key=lambda b: b["t"])
