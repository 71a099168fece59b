"""Who did something and from where: the actor of an audit entry, taken from a request."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest


@dataclass(frozen=True)
class Actor:
    """Who did something, from where: captured from the request once."""

    label: str
    user_id: int | None = None
    ip: str = ""
    user_agent: str = ""


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, unless it is a trusted proxy: then the nearest untrusted X-Forwarded-For hop."""
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = {_canonical(proxy) for proxy in settings.TRUSTED_PROXIES}
    if _canonical(remote) not in trusted:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed(hops):
        if hop and _is_ip(hop) and _canonical(hop) not in trusted:
            return hop
    return remote


def _canonical(address: str) -> str:
    """One spelling per address, so that a proxy listed as ``10.0.0.5`` is also known when
    the socket says ``::ffff:10.0.0.5`` (a dual-stack listener) or an IPv6 address is
    written in capitals or uncompressed."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# The request attribute naming the credential a request authenticated with when it is not
# the session (an API token: "token sf_AbCd1234"); set by accounts.tokens.
CREDENTIAL_ATTRIBUTE = "audit_credential"


def actor_from_request(
    request: HttpRequest, *, label: str | None = None, user: Any = None
) -> Actor:
    """The actor of a request: its user (or ``user``), or ``label`` for link visitors.

    A request authenticated by an access token names it after the user ("alice via token
    sf_AbCd1234"), so every entry a token wrote says which token wrote it.
    """
    user = user or getattr(request, "user", None)
    authenticated = bool(user and user.is_authenticated)
    if label is None:
        label = user.get_username() if authenticated else "anonymous"
        credential = getattr(request, CREDENTIAL_ATTRIBUTE, "")
        if authenticated and credential:
            label = f"{label} via {credential}"
        user_id = user.pk if authenticated else None
    else:
        user_id = None
    return Actor(
        label=label,
        user_id=user_id,
        ip=client_ip(request),
        # No database text holds NUL (PostgreSQL refuses it): a client must not be able to
        # turn its own audit entry, and so its request, into an error.
        user_agent=request.META.get("HTTP_USER_AGENT", "").replace("\x00", "")[:300],
    )


SYSTEM = Actor(label="system")
