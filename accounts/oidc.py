"""Single sign-on through OpenID Connect, on mozilla-django-oidc (README "Single sign-on").

mozilla-django-oidc runs the authorization-code flow with PKCE (RFC 7636, S256) and a
nonce, fetches the provider's JWKS and checks the ID token's signature. What it leaves
to its users, done here: the issuer and audience of the ID token and its expiry and
issue time as required claims (OpenID Connect Core 1.0, section 3.1.3.7), users matched
by ``iss`` and ``sub`` (never by e-mail), accounts created only when OIDC_CREATE_USERS
allows, groups from OIDC_GROUPS_CLAIM, deactivated users refused, and every refusal
answered with a page that says what went wrong (never a 500, never a bare 400).
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth import logout
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts import selectors, services
from audit.actors import actor_from_request
from securefiles.lib.auth_types import User
from securefiles.lib.site import site_url

logger = logging.getLogger(__name__)

# Seconds of clock difference between the provider and this server that are tolerated.
CLOCK_SKEW_SECONDS = 60


class SSORefused(Exception):
    """A sign-in through the provider that is refused; the message is safe to show."""


class PortalOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with the ID token fully validated and users matched
    by the provider's ``sub``. Raises SSORefused (caught by the callback view) for a
    token that fails validation, a disabled account, or a ``sub`` linked to no account
    when accounts are not created at sign-in."""

    def _verify_jws(self, payload: str, key: Any) -> dict:
        """The ID token's claims once its signature (RS256 by default, the algorithm the
        settings name and no other), issuer, audience, expiry and issue time verified."""
        try:
            claims = jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_OP_ISSUER,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise SSORefused(_("The identity provider's token has expired.")) from None
        except jwt.InvalidAudienceError:
            raise SSORefused(
                _("The identity provider's token was not issued for this portal.")
            ) from None
        except jwt.InvalidIssuerError:
            raise SSORefused(_("The token was not issued by the configured provider.")) from None
        except jwt.PyJWTError as exc:
            logger.warning("ID token refused: %s", type(exc).__name__)
            raise SSORefused(_("The identity provider's token is not valid.")) from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        # OpenID Connect Core 1.0, 3.1.3.7 (items 4-5): with several audiences, the token
        # must name this portal as the party it was issued to (azp).
        if len(audiences) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SSORefused(_("The identity provider's token was not issued for this portal."))
        return claims

    def verify_token(self, token: str, **kwargs: Any) -> dict:
        try:
            return super().verify_token(token, **kwargs)
        except SuspiciousOperation as exc:
            # A nonce that is not this sign-in's: a replayed or injected token.
            logger.warning("ID token refused: %s", exc)
            raise SSORefused(
                _("The identity provider's answer does not match this sign-in.")
            ) from None

    def get_userinfo(self, access_token: str, id_token: str, payload: dict) -> dict:
        """The ID token's claims, completed from the userinfo endpoint when one is set and
        it answers for the same ``sub`` (Core 1.0, section 5.3.2: otherwise ignored)."""
        claims = dict(payload)
        if settings.OIDC_OP_USER_ENDPOINT:
            extra = super().get_userinfo(access_token, id_token, payload)
            if extra.get("sub") == payload["sub"]:
                claims.update({k: v for k, v in extra.items() if k not in ("iss", "aud")})
        return claims

    def get_user(self, user_id: int) -> User | None:
        """The signed-in user of a session this backend opened; None (signed out) once the
        account is disabled, as Django's ModelBackend does (the library's would keep it)."""
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    def get_token(self, payload: dict) -> dict:
        # The same redirect_uri as the authorization request's: from SITE_URL.
        return super().get_token({**payload, "redirect_uri": callback_url()})

    def verify_claims(self, claims: dict) -> bool:
        return bool(claims.get("sub"))

    def filter_users_by_claims(self, claims: dict) -> list[User]:
        """The account linked to this ``iss``/``sub``; or, on the first sign-in from an
        invitation (its token in this session), the invited account, then linked."""
        user = selectors.user_for_oidc(issuer=claims["iss"], subject=claims["sub"])
        if user is None:
            user = services.oidc_link_invited(
                token=str(self.request.session.get(services.INVITATION_SESSION_KEY, "")),
                issuer=claims["iss"],
                subject=claims["sub"],
                actor=actor_from_request(self.request, label="anonymous"),
            )
        if user is None:
            if not settings.OIDC_CREATE_USER:
                raise SSORefused(
                    _("Your account at the identity provider is not linked to an account here.")
                )
            return []
        if not user.is_active:
            raise SSORefused(_("Your account here is disabled."))
        return [user]

    def create_user(self, claims: dict) -> User:
        user = services.oidc_user_create(
            claims=claims, actor=actor_from_request(self.request, label="anonymous")
        )
        return self.update_user(user, claims)

    def update_user(self, user: User, claims: dict) -> User:
        """At every sign-in: the groups from OIDC_GROUPS_CLAIM, and the token's amr/acr
        kept for the callback view (provider_mfa_accepted)."""
        if settings.OIDC_GROUPS_CLAIM:
            services.oidc_groups_sync(
                user=user,
                names=_group_names(claims.get(settings.OIDC_GROUPS_CLAIM)),
                actor=actor_from_request(self.request, user=user),
            )
        self.request.session["securefiles_sso_claims"] = {
            "amr": list(claims.get("amr") or []),
            "acr": str(claims.get("acr") or ""),
        }
        return user


def _group_names(value: object) -> list[str]:
    """The group names a claim lists (a list of strings, or one string); others ignored."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return sorted({name.strip()[:150] for name in value if isinstance(name, str) and name.strip()})


def provider_mfa_accepted(claims: dict) -> bool:
    """Whether the ID token says the provider used MFA that OIDC_MFA_SATISFIES_2FA lets
    count as the second factor: an ``amr`` in OIDC_MFA_AMR or an ``acr`` in OIDC_MFA_ACR
    (RFC 8176 names the amr values)."""
    if not settings.OIDC_MFA_SATISFIES_2FA:
        return False
    amr = set(claims.get("amr") or [])
    return bool(amr & set(settings.OIDC_MFA_AMR)) or (
        bool(claims.get("acr")) and claims.get("acr") in settings.OIDC_MFA_ACR
    )


def callback_url() -> str:
    """The redirect URI the provider sends the browser back to: on SITE_URL (to be
    registered at the provider as it is), never built from a request's Host header."""
    return site_url() + reverse("oidc_authentication_callback")


class SSOLoginView(OIDCAuthenticationRequestView):
    """GET /accounts/oidc/authenticate/: off (404) unless OIDC is configured; else
    mozilla-django-oidc's redirect to the provider (state, nonce, PKCE in the session)."""

    def get(self, request: HttpRequest) -> HttpResponseBase:
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured")
        return super().get(request)

    def get_extra_params(self, request: HttpRequest) -> dict:
        # Applied after the library's own parameters: replaces its Host-built redirect_uri.
        return {"redirect_uri": callback_url()}


class SSOCallbackView(OIDCAuthenticationCallbackView):
    """GET /accounts/oidc/callback/: the provider's answer. A refusal of any kind (an
    error from the provider, an unknown state, a token that fails validation, a disabled
    or unlinked account, the provider unreachable) ends any session, is audited as a
    failed login, and answers 403 with a page that says why."""

    def get(self, request: HttpRequest) -> HttpResponseBase:
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured")
        if "error" in request.GET:
            return self._refused(request, _("The identity provider did not sign you in."))
        if request.GET.get("state") not in request.session.get("oidc_states", {}):
            return self._refused(
                request, _("This sign-in was not started from this browser, or it was used.")
            )
        try:
            return super().get(request)
        except SSORefused as exc:
            return self._refused(request, str(exc))
        except (SuspiciousOperation, requests.RequestException, ValueError, KeyError) as exc:
            logger.warning("single sign-on failed: %s", type(exc).__name__)
            return self._refused(request, _("The identity provider could not be reached."))

    def login_success(self) -> HttpResponseBase:
        claims = self.request.session.pop("securefiles_sso_claims", {})
        response = super().login_success()
        if provider_mfa_accepted(claims):
            self.request.session[selectors.SSO_MFA_SESSION_KEY] = True
        return response

    def login_failure(self) -> HttpResponseBase:
        return self._refused(self.request, _("Single sign-on did not sign you in."))

    def _refused(self, request: HttpRequest, reason: str) -> HttpResponse:
        services.login_failure_record(
            actor=actor_from_request(request, label="anonymous"),
            username="",
            step=f"sso ({reason})",
        )
        if request.user.is_authenticated:
            logout(request)
        return render(request, "registration/sso_failed.html", {"reason": reason}, status=403)
