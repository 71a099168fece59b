"""The login lockout policy: three limits, each shared by every worker.

1. Per account *and* address (django-axes, ``AXES_LOCKOUT_PARAMETERS``): LOGIN_FAILURE_LIMIT
   failures for one username from one address lock that pair for LOGIN_COOLOFF_MINUTES.
   Only that account's own success from that address clears them: a success of any other
   account from the same address leaves them counting (django-axes resets the attempts
   matching the successful request's lockout parameters, and the only parameter here is
   the username-and-address pair).
2. Per account, from anywhere (here): LOGIN_ACCOUNT_FAILURE_LIMIT failures for one
   username from all addresses together, within the cool-off window, refuse that account
   to every browser that has not signed in to it before. Guessing one account from many
   addresses stays slow, while its owner, on a browser that holds the account's
   known-device cookie, still signs in. The owner's success clears the count.
3. Per address, any account (here): LOGIN_ADDRESS_FAILURE_LIMIT failures from one address
   within the window refuse that address to browsers without a known-device cookie for
   the account they try. A success does not clear it (an attacker's own account must not
   buy more guesses against others).

The known-device cookie follows OWASP's "device cookies" scheme: a signed cookie, set
when an account signs in, that names the accounts which signed in on that browser. It is
not a credential: it only exempts a browser from limits 2 and 3, never from limit 1, the
password or the second factor.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponseBase

from audit.actors import client_ip
from throttle import counters, keys

KNOWN_DEVICE_COOKIE = "securefiles_device"
_COOKIE_SALT = "securefiles.login_policy.known-device"
_COOKIE_MAX_AGE = 90 * 24 * 3600  # seconds: a browser used once a quarter stays known
_COOKIE_MAX_ACCOUNTS = 8  # a shared browser remembers this many accounts, newest kept


def _window() -> int:
    """The counting window in seconds: the same as the axes cool-off."""
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def known_accounts(request: HttpRequest) -> list[int]:
    """User ids this browser has signed in as (the signed known-device cookie; [] if none)."""
    value = (
        request.get_signed_cookie(
            KNOWN_DEVICE_COOKIE, default="", salt=_COOKIE_SALT, max_age=_COOKIE_MAX_AGE
        )
        or ""
    )  # never None with a default; the stubs cannot tell
    return [int(part) for part in value.split(",") if part.isdigit()]


def _known_for(request: HttpRequest, username: str) -> bool:
    from django.contrib.auth import get_user_model

    ids = known_accounts(request)
    if not ids:
        return False
    user_model = get_user_model()
    return user_model.objects.filter(pk__in=ids, **{user_model.USERNAME_FIELD: username}).exists()


def refusal(request: HttpRequest, username: str) -> str | None:
    """Why a password login for ``username`` must be refused before checking it, or None.

    Returns "account" or "address" (limits 2 and 3 above); limit 1 is django-axes' own.
    """
    window = _window()
    over_account = counters.is_throttled(
        keys.login_account_key(username), settings.LOGIN_ACCOUNT_FAILURE_LIMIT, window
    )
    over_address = counters.is_throttled(
        keys.login_address_key(client_ip(request)), settings.LOGIN_ADDRESS_FAILURE_LIMIT, window
    )
    if not (over_account or over_address) or _known_for(request, username):
        return None
    return "account" if over_account else "address"


def failure_record(request: HttpRequest, username: str) -> None:
    """Count one failed login for ``username`` from the request's address (limits 2, 3)."""
    window = _window()
    counters.add_failure(keys.login_account_key(username), window)
    counters.add_failure(keys.login_address_key(client_ip(request)), window)


def success_record(
    request: HttpRequest, user: AbstractBaseUser, response: HttpResponseBase
) -> None:
    """After ``user`` signed in: clear their account-wide count, remember this browser."""
    counters.reset(keys.login_account_key(user.get_username()))
    ids = [user.pk, *(pk for pk in known_accounts(request) if pk != user.pk)]
    response.set_signed_cookie(
        KNOWN_DEVICE_COOKIE,
        ",".join(str(pk) for pk in ids[:_COOKIE_MAX_ACCOUNTS]),
        salt=_COOKIE_SALT,
        max_age=_COOKIE_MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
