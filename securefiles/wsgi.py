"""WSGI entry point. Refuses to start without usable ENCRYPTION_KEYS (gunicorn and
runserver run no system checks, so the keyring is validated here too)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "securefiles.settings")

application = get_wsgi_application()

from sharing.keyring import get_keyring  # noqa: E402  (needs the app registry)

get_keyring()
