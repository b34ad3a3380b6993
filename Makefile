# The whole workflow: `make run` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
VENDOR := crm/static/vendor
export FLASK_APP := app

.PHONY: install run test lint format db-check bench bench-smoke translations messages clean

install: $(STAMP) $(VENDOR)/.copied translations

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# Front-end packages come from npm, pinned in package-lock.json; only the files
# the pages load are copied into the git-ignored vendor folder.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(VENDOR)/.copied: node_modules/.package-lock.json
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp node_modules/sortablejs/Sortable.min.js $(VENDOR)/Sortable.min.js
	touch $@

# Compiled catalogs are build output, not committed.
translations: $(STAMP)
	$(VENV)/bin/pybabel -q compile -d crm/translations

# Re-extract the strings and merge them into the catalogs after changing texts.
# --ignore-dirs: pybabel's default would also skip folders starting with "_" (templates/_macros).
messages: $(STAMP)
	$(VENV)/bin/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext -k lazy_pgettext:1c,2 --ignore-dirs='.* __pycache__ node_modules' -o crm/translations/messages.pot --no-location --sort-output .
	$(VENV)/bin/pybabel -q update -i crm/translations/messages.pot -d crm/translations --no-fuzzy-matching

run: install
	$(PY) -m crm.devserver

test: install
	$(PY) -m tests.run

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Models and migrations agree: `flask db check` on a throwaway database migrated to the
# head (a local instance/ database may lag behind until `make run` upgrades it).
db-check: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	export DATABASE_URL="sqlite:///$$tmp/check.db" CRM_INSTANCE_PATH="$$tmp" && \
	$(VENV)/bin/flask db upgrade 2>/dev/null && $(VENV)/bin/flask db check 2>/dev/null

# The benchmark of issue 11 on this machine's PostgreSQL and Redis (127.0.0.1): seeds
# crm_bench at 100,000 contacts once (BENCH_ARGS=--fresh seeds it again), serves it with
# gunicorn, prints the table and writes bench-results/bench.json. wrk drives the load
# pass when installed (apt-get install wrk); otherwise a slower Python load generator.
bench: install
	@command -v wrk >/dev/null || echo "wrk is not installed (apt-get install wrk): the load pass uses the Python load generator."
	$(PY) -m bench $(BENCH_ARGS)

# The same run at 1,000 contacts in a throwaway database, in seconds (also part of make test).
bench-smoke: install
	$(PY) -m bench --smoke

clean:
	rm -rf $(VENV) node_modules $(VENDOR) instance
