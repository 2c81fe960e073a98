"""Every benchmark runs in CI at its tiny size: `make bench-smoke` must list each bench/*.py."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_bench_is_in_the_smoke_target():
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^BENCH_SMOKE\s*=\s*(.*)$", makefile, re.MULTILINE)
    assert match, "the Makefile has no BENCH_SMOKE list"
    listed = set(match.group(1).split())
    benches = {path.stem for path in (ROOT / "bench").glob("*.py")} - {"harness"}
    assert benches, "no benchmark found in bench/"
    assert benches - listed == set(), f"benchmarks missing from make bench-smoke: {sorted(benches - listed)}"
    assert listed - benches == set(), f"make bench-smoke lists benchmarks that do not exist: {sorted(listed - benches)}"
    assert "bench-smoke:" in makefile and "$(BENCH_SMOKE)" in makefile.split("bench-smoke:", 1)[1]
    assert "make bench-smoke" in (ROOT / ".ci" / "run").read_text(), ".ci/run does not run make bench-smoke"
