"""The one way a time is written for people, on every page, in logs and in the CLI:
24-hour, in the server's zone, the zone written out ("2026-03-05 10:15:42 UTC").

The Django admin gets the same through ``heportal/formats`` (DATETIME_FORMAT), and
the JavaScript that writes times (charts.js) uses the server's zone and 24 hours too.
"""
from datetime import datetime

from django.utils import timezone

FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def format_time(moment, missing=""):
    """``moment`` in the one format; ``missing`` when there is none."""
    if not isinstance(moment, datetime):
        return missing
    return timezone.localtime(moment).strftime(FORMAT)
