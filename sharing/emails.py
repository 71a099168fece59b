"""Helpers for the e-mails the portal sends."""

from __future__ import annotations

from django.conf import settings


def site_url() -> str:
    """The portal's public base URL without a trailing slash, for links in e-mails.

    ``settings.SITE_URL`` when it is set; otherwise the first concrete ALLOWED_HOSTS entry,
    over https when settings.HTTPS is on, http otherwise.
    """
    configured = str(getattr(settings, "SITE_URL", "") or "")
    if configured:
        return configured.rstrip("/")
    hosts = [host.lstrip(".") for host in settings.ALLOWED_HOSTS if host.strip(".*")]
    scheme = "https" if settings.HTTPS else "http"
    return f"{scheme}://{hosts[0] if hosts else 'localhost'}"
