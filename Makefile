# The course's two commands. Both set everything up first (idempotent; see scripts/setup.sh).
#   make lab    run the course: JupyterLab on 127.0.0.1, opened at notebooks/00_setup_check.ipynb
#   make test   run the tests: llmkit unit tests, servers, and every notebook under nbval
.PHONY: setup lab test clean

setup:
	@bash scripts/setup.sh

lab: setup
	@bash scripts/lab.sh

test: setup
	@bash scripts/test.sh

clean:
	rm -rf .venv .venv-sglang .stamps test-artifacts
