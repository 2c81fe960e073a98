.PHONY: demo test soak bench

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

soak:
	SOAK_SECONDS=$${SOAK_SECONDS:-300} bash scripts/test.sh -m soak

bench:
	bash scripts/bench.sh
