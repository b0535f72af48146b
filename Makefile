# The two commands of README.md. Both set up whatever is missing first.
.PHONY: setup demo test

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/livedance demo

test: setup
	.venv/bin/python -m pytest
