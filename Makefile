# The two commands of the README: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
CHROMIUM := /usr/bin/chromium
LOCALE_DIR := visits/locale

.PHONY: run test bench lint install browser messages

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Browser tests drive Debian's Chromium (Playwright cannot download browsers here).
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

run: install
	$(BIN)/visits demo
	$(BIN)/visits serve

test: install browser
	$(BIN)/pytest

bench: install
	$(BIN)/python -m tests.bench.rush
	$(BIN)/python -m tests.bench.booking_cost
	$(BIN)/python -m tests.bench.floor
	$(BIN)/python -m tests.bench.dispatch
	$(BIN)/python -m tests.bench.gate
	$(BIN)/python -m tests.bench.tracing

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# After changing user-facing text: extract it, merge it into every catalog, translate the
# new entries in $(LOCALE_DIR)/*/LC_MESSAGES/messages.po, then run this again to compile.
messages: install
	$(BIN)/pybabel extract --no-location --sort-output -F $(LOCALE_DIR)/babel.cfg -k N_ -k Np_:1,2 -o $(LOCALE_DIR)/messages.pot .
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -i $(LOCALE_DIR)/messages.pot -d $(LOCALE_DIR)
	$(BIN)/pybabel compile --statistics -d $(LOCALE_DIR)
