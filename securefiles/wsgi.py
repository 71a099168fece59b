"""WSGI entry point. Refuses to start without usable ENCRYPTION_KEYS (gunicorn and
runserver run no system checks, so the keyring is validated here too).

Under gunicorn, a client that sends or reads nothing for CLIENT_IDLE_TIMEOUT_SECONDS in the
middle of a request is dropped (securefiles.client_idle)."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "securefiles.settings")

django_application = get_wsgi_application()

from securefiles.client_idle import ClientIdleTimeoutMiddleware  # noqa: E402

application = ClientIdleTimeoutMiddleware(django_application, settings.CLIENT_IDLE_TIMEOUT_SECONDS)

from sharing.storage.keyring import get_keyring  # noqa: E402  (needs the app registry)

get_keyring()
