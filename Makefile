# Two commands do all the set-up on a fresh machine (Python 3.11+):
#   make run    install requirements.txt, create .env with fresh random keys if absent,
#               migrate, serve on HOST (make run HOST=0.0.0.0:8000 to serve other machines)
#   make test   install requirements-dev.txt (the test tools too) and run the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1:8000

.PHONY: run serve worker test test-only lint bench bench-metadata bench-metadata-ci load load-ci superuser clean

# Serving needs requirements.txt only; the test tools (moto, Playwright, bandit, ...) are
# installed by the targets that use them. Each set has its own stamp file.
$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# A development .env with fresh random secrets; an existing .env is never overwritten.
# DEBUG stays off (Django's debug 404 lists every URL pattern): it is an explicit opt-in,
# DEBUG=True in .env.
.env: | $(BIN)/.installed
	$(BIN)/python -c "import secrets; from sharing.crypto import generate_key_entry as g; \
	print('SECRET_KEY=' + secrets.token_urlsafe(50)); \
	print('ENCRYPTION_KEYS=' + g('k1')); \
	print('SITE_URL=http://$(HOST)')" > .env
	chmod 600 .env
	@echo "Created .env with a new SECRET_KEY and ENCRYPTION_KEYS (keep it; files need its key)"
	@echo "and SITE_URL=http://$(HOST), the address links in e-mails point to (edit it to match)."

# One job worker (manage.py db_worker, the database queue) beside the server, stopped with
# it: e-mail and the admin's bulk work need no other service. TASKS_BACKEND=immediate in
# .env runs jobs inside the request instead (no worker needed, but slow mail blocks pages).
WITH_WORKER = $(BIN)/python manage.py db_worker --queue-name '*' --no-reload & \
	worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM;

run: $(BIN)/.installed .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo "Create a first user with: $(BIN)/python manage.py createsuperuser"
	$(WITH_WORKER) $(BIN)/python manage.py runserver $(HOST)

serve: $(BIN)/.installed .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(WITH_WORKER) $(BIN)/gunicorn securefiles.wsgi -c gunicorn.conf.py

# The job worker alone (e-mail, admin bulk work, maintenance batches): run it on any number
# of machines sharing the database (README "Background jobs").
worker: $(BIN)/.installed .env
	$(BIN)/python manage.py db_worker --queue-name '*' --no-reload

superuser: $(BIN)/.installed .env
	$(BIN)/python manage.py createsuperuser

test: $(BIN)/.installed-dev test-only

# pytest exits 5 when it collected no test: make fails on any non-zero code, so does CI.
test-only:
	$(BIN)/python -m pytest

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	# The django-stubs plugin imports the settings: a throw-away SECRET_KEY, and no .env.
	SECUREFILES_ENV_FILE= SECRET_KEY=mypy-type-check-only $(BIN)/mypy
	$(BIN)/bandit -q -c bandit.yaml -r accounts audit throttle sharing api ops securefiles jobs filerequests client/securefiles_cli --severity-level medium
	# Every model change has its migration (throw-away keys: nothing is encrypted here).
	SECUREFILES_ENV_FILE= SECRET_KEY=migrations-check-only \
	  ENCRYPTION_KEYS=check:w4LpCWLZUlnRV1anQlCMOsmPvvGssgjADu9Wjw1jp7U= \
	  $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/ruff format --check .

bench: $(BIN)/.installed-dev
	$(BIN)/python bench/transfer.py

# Metadata at scale (bench/README.md): PostgreSQL at BENCH_DATABASE_URL, wiped. Four runs,
# each under 10 minutes: the user's pages, a million files, five million entries, the admin.
bench-metadata: $(BIN)/.installed-dev
	$(BIN)/python bench/metadata.py --phase user
	$(BIN)/python bench/metadata.py --phase files
	$(BIN)/python bench/metadata.py --phase audit
	$(BIN)/python bench/metadata.py --phase pages

# The reduced form CI runs (about a minute): fails only if a step crashes or a page errs.
bench-metadata-ci: $(BIN)/.installed-dev
	$(BIN)/python bench/metadata.py --small 2000 --files 20000 --shared 2000 --links 200 \
		--admin-files 0 --audit 100000 --requests 5 --writers 4 --write-seconds 2

# Load (bench/README.md "Load test"): mixed work against gunicorn on PostgreSQL at
# LOAD_DATABASE_URL (a database whose name contains "load", wiped). Exits 1 on any error
# or hash mismatch.
load: $(BIN)/.installed-dev
	$(BIN)/python bench/load.py --clients 50 --seconds 60

# The short form CI runs (under a minute in all).
load-ci: $(BIN)/.installed-dev
	$(BIN)/python bench/load.py --clients 10 --seconds 15 --deadline 240

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .hypothesis
