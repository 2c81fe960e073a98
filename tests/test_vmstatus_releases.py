"""The plain layouts of older setup versions (as the lab prints them, from the sources):
fields in Python 2 dict order, the old header, a stale host's engine status as printed."""
from pathlib import Path

import pytest

from upgrades.remote.vmstatus import parse_vm_status

DATA = Path(__file__).parent / "data" / "vm_status"


@pytest.mark.parametrize("name, series, stopped_field", [
    ("plain_setup_1_2.txt", "1.2", False),
    ("plain_setup_1_3.txt", "1.3", True),
    ("plain_setup_2_2.txt", "2.0-2.2", True),
])
def test_each_old_layout_parses_and_tells_its_setup_series(name, series, stopped_field):
    status = parse_vm_status((DATA / name).read_text())
    assert (status.format, status.setup_series) == ("plain", series)
    he1, he2, he3 = status.hosts
    assert (he1.hostname, he1.score, he1.engine_vm, he1.engine_detail) == ("he1.example.com", 2400, "up", "up")
    assert he2.engine_reason == "vm not running on this host"
    assert (he1.crc32 is not None) == stopped_field
    # he3 is stale: printed as "unknown stale-data", and not trusted
    assert (he3.up_to_date, he3.engine_vm, he3.engine_reason) == (False, "unknown", "stale-data")
    assert status.engine_host() is he1


def test_json_layout_series_depends_on_the_global_maintenance_key():
    assert parse_vm_status('{"global_maintenance": false}').setup_series == "2.2+"
    older = parse_vm_status('{"1": {"host-id": 1, "hostname": "h", "score": 1, "engine-status": '
                            '{"vm": "up", "health": "good", "detail": "Up"}, "live-data": true}}')
    assert (older.format, older.setup_series) == ("json", "2.0-2.1")
