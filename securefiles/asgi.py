"""ASGI entry point. Refuses to start without usable ENCRYPTION_KEYS, like wsgi.py."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "securefiles.settings")

application = get_asgi_application()

from sharing.keyring import get_keyring  # noqa: E402  (needs the app registry)

get_keyring()
