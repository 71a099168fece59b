"""Passkeys: the page that lists, names and removes them, and the JSON endpoints the
page's script (static/js/passkeys.js) calls around navigator.credentials."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import login_policy, passkeys
from accounts import selectors as account_selectors
from accounts.views import PENDING_KEY, _pending_user, _safe_next
from audit.actors import actor_from_request
from securefiles.lib.auth_types import AuthenticatedHttpRequest, User

MAX_CREDENTIAL_JSON = 64 * 1024


@never_cache
@login_required
@require_http_methods(["GET", "HEAD"])
def passkey_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    context = {"passkeys": account_selectors.passkeys_of(request.user)}
    return render(request, "accounts/passkeys.html", context)


# A PublicKeyCredential's JSON (WebAuthn Level 3, section 5.1, toJSON()) nests 4 deep at
# most (credential, response, transports; clientExtensionResults' own members): deeper is
# not an answer from a browser, and deep enough makes the json module raise RecursionError.
MAX_CREDENTIAL_DEPTH = 8


def _nesting_within(value: object, limit: int) -> bool:
    """Whether JSON ``value`` nests at most ``limit`` arrays/objects deep (no recursion)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return True


def _credential(request: HttpRequest) -> tuple[str, str]:
    """(credential JSON, name) from the script's JSON body ``{"credential": {...},
    "name": "..."}``; ValueError if it is too large (MAX_CREDENTIAL_JSON bytes), not
    JSON, or nested deeper than MAX_CREDENTIAL_DEPTH; KeyError or TypeError if it is JSON
    of another shape."""
    if len(request.body) > MAX_CREDENTIAL_JSON:
        raise ValueError("too large")
    try:
        body = json.loads(request.body)
    except RecursionError:
        raise ValueError("nested too deep") from None
    credential = body["credential"]
    if not _nesting_within(credential, MAX_CREDENTIAL_DEPTH):
        raise ValueError("nested too deep")
    name = body.get("name", "")
    return json.dumps(credential), (name if isinstance(name, str) else "")[:100]


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@never_cache
@login_required
@require_POST
def passkey_register_options(request: AuthenticatedHttpRequest) -> HttpResponse:
    options = passkeys.registration_options(user=request.user, session=request.session)
    return HttpResponse(options, content_type="application/json")


@never_cache
@login_required
@require_POST
def passkey_register(request: AuthenticatedHttpRequest) -> JsonResponse:
    """201 ``{"redirect": "/accounts/passkeys/"}`` once the passkey is kept; 400
    ``{"error": message}`` otherwise."""
    try:
        credential, name = _credential(request)
        passkeys.passkey_register(
            user=request.user,
            session=request.session,
            credential=credential,
            name=name,
            actor=actor_from_request(request),
        )
    except (ValueError, KeyError, TypeError):
        return _error(_("The passkey's answer is malformed."))
    except passkeys.PasskeyError as exc:
        return _error(str(exc))
    messages.success(request, _("Passkey registered."))
    return JsonResponse({"redirect": "/accounts/passkeys/"}, status=201)


def _who(request: HttpRequest) -> tuple[User | None, str | None]:
    """Whose passkey is asked for: the logged-in user, or whoever passed the password step
    (then ``next``); (None, None) for a passwordless sign-in."""
    if request.user.is_authenticated:
        return request.user, None
    return _pending_user(request)


@never_cache
@require_POST
def passkey_auth_options(request: HttpRequest) -> HttpResponse:
    user, _next = _who(request)
    options = passkeys.authentication_options(session=request.session, user=user)
    return HttpResponse(options, content_type="application/json")


@never_cache
@require_POST
def passkey_auth(request: HttpRequest) -> JsonResponse:
    """A passkey as the second factor (after the password, or for a session that must pass
    one), as a fresh proof for a logged-in user, or to sign in without a password.
    200 ``{"redirect": url}``; 400 ``{"error": message}``; 403 for a cloned credential."""
    user, next_url = _who(request)
    try:
        credential, _name = _credential(request)
        passkey = passkeys.passkey_authenticate(
            session=request.session,
            credential=credential,
            user=user,
            actor=actor_from_request(request, label="anonymous"),
        )
    except (ValueError, KeyError, TypeError):
        return _error(_("The passkey's answer is malformed."))
    except passkeys.PasskeyCloned as exc:
        return _error(str(exc), status=403)
    except passkeys.PasskeyError as exc:
        return _error(str(exc))
    request.session.pop(PENDING_KEY, None)
    if not request.user.is_authenticated:
        proof_keys = (
            account_selectors.PASSKEY_VERIFIED_AT_KEY,
            account_selectors.PASSKEY_VERIFIED_ID_KEY,
        )
        proof = {key: request.session[key] for key in proof_keys}
        login(request, passkey.user, backend="django.contrib.auth.backends.ModelBackend")
        request.session.update(proof)  # login() may start a new session: the proof goes on
    else:
        request.session.cycle_key()  # a new privilege level: a new session key
    response = JsonResponse({"redirect": resolve_url(_safe_next(request, next_url))})
    login_policy.success_record(request, passkey.user, response)
    return response


@login_required
@require_POST
def passkey_rename(request: AuthenticatedHttpRequest, passkey_id: int) -> HttpResponse:
    passkey = account_selectors.passkey_get_for_owner(user=request.user, passkey_id=passkey_id)
    passkeys.passkey_rename(
        passkey=passkey, name=str(request.POST.get("name", "")), actor=actor_from_request(request)
    )
    return redirect("passkeys")


@login_required
@require_POST
def passkey_remove(request: AuthenticatedHttpRequest, passkey_id: int) -> HttpResponse:
    """Remove a passkey: the password always; for the account's last second factor, as
    for turning TOTP off, also proof of that factor: a passkey used in the last five
    minutes (the page's "Confirm with your passkey"). An account without a usable
    password (single sign-on) has none to give: that proof stands in for it."""
    user = request.user
    passkey = account_selectors.passkey_get_for_owner(user=user, passkey_id=passkey_id)
    proved_recently = account_selectors.passkey_proved_recently(request)
    if user.has_usable_password():
        if not user.check_password(str(request.POST.get("password", ""))):
            messages.error(request, _("Wrong password: the passkey was kept."))
            return redirect("passkeys")
        last = len(account_selectors.passkeys_of(user)) == 1
        needs_proof = last and not account_selectors.has_device(user)
    else:
        needs_proof = True
    if needs_proof and not proved_recently:
        messages.error(
            request,
            _("This is your last second factor: confirm with your passkey first.")
            if user.has_usable_password()
            else _("To remove a passkey, confirm with your passkey first."),
        )
        return redirect("passkeys")
    passkeys.passkey_remove(passkey=passkey, actor=actor_from_request(request))
    messages.success(request, _("Passkey removed."))
    return redirect("passkeys")
