.PHONY: demo test soak bench bench-smoke

# Every benchmark in bench/ (tests/test_bench_smoke_list.py checks none is missing).
BENCH_SMOKE = live_output ha_polling poll_cost dashboard engine_steps many_runs audit_chain he_upgrade sandbox rehearsal soak memory

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

soak:
	SOAK_SECONDS=$${SOAK_SECONDS:-300} bash scripts/test.sh -m soak

bench:
	bash scripts/bench.sh

# Every benchmark at a tiny size, to know they still run (CI); measures nothing.
bench-smoke:
	BENCH_SIZE=smoke BENCHES="$(BENCH_SMOKE)" bash scripts/bench.sh
