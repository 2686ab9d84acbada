# The two commands of the README: `make demo` and `make test`. Everything they need is installed here
# from pyproject.toml (pinned), into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
export SAM_CLI_TELEMETRY := 0

.PHONY: demo test venv lint events docs build sizes validate checkov bench clean

LOCK := layers/driftloop/requirements.txt

# The layer's lock constrains the venv too (pip constraints take no extras: they are stripped), so the tests
# run the versions Lambda runs.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	sed 's/\[[a-z,]*\]//' $(LOCK) > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e '.[dev]'
	# MovieLens 100K ships inside the recbole wheel; its torch dependency is not needed to read it.
	$(BIN)/python -m pip install --quiet --no-deps recbole==1.2.1
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/driftloop demo

# Two workers, one test file each at a time: the integration tests mostly wait on the state machine.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/cfn-lint -t template.yaml -a cfn_lint_serverless.rules

events: $(STAMP)
	$(BIN)/python -m driftloop.local.samples events

# docs/deploy.md's parameter table, from template.yaml (a test fails when it is stale).
docs: $(STAMP)
	$(BIN)/python scripts/parameter_table.py

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==1.170.0 uv==0.13.9
	touch $@

validate: $(SAM_VENV)/.installed
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1

build: $(SAM_VENV)/.installed
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM_VENV)/bin/sam build

sizes: build
	$(BIN)/python scripts/lambda_sizes.py .aws-sam/build

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==3.3.30
	touch $@

checkov: $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet

bench: $(STAMP)
	for script in benchmarks/*_benchmark.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf .aws-sam .driftloop
