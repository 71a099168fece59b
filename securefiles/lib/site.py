"""The portal's public address, for links in e-mails.

A link in an e-mail is built from settings, never from the request that caused the mail:
the Host header is the client's to choose (ALLOWED_HOSTS does not even look at its port),
and a password-reset link pointing at an attacker's port or host hands them the token.
"""

from __future__ import annotations

from django.conf import settings


def site_url() -> str:
    """The portal's public base URL, ``scheme://host[:port]``, without a trailing slash.

    SITE_URL when set (settings validated it). Otherwise the first ALLOWED_HOSTS entry that
    names a host (``*`` is skipped, a leading dot of ``.example.org`` dropped; ``localhost``
    if none does), on https when HTTPS=True, else http. Raises nothing.
    """
    if settings.SITE_URL:
        return settings.SITE_URL.rstrip("/")
    scheme = "https" if settings.HTTPS else "http"
    hosts = [host.lstrip(".") for host in settings.ALLOWED_HOSTS if host.strip(".*")]
    return f"{scheme}://{hosts[0] if hosts else 'localhost'}"


def absolute_url(path: str) -> str:
    """``path`` (an absolute path such as ``/files/<id>/``) on the portal's public address.

    Raises ValueError if ``path`` does not start with a single ``/`` (a relative path, or a
    protocol-relative ``//host`` that would name another site).
    """
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError(f"absolute_url needs a path starting with '/', not {path!r}")
    return site_url() + path
