"""Audit entries and lockout counts for logging in: Django and django-axes signal these,
there is no other hook. Connected in AccountsConfig.ready."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts import login_policy, services
from audit.actors import SYSTEM, actor_from_request


@receiver(user_logged_in)
def _audit_login(sender: type, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    services.login_record(actor=actor_from_request(request, user=user))


@receiver(user_login_failed)
def _audit_login_failure(
    sender: type, credentials: dict, request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # `credentials` has the password already masked by Django; only the username is kept.
    username = str(credentials.get("username", ""))[:150]
    # An attempt django-axes refused unchecked (its pair is locked) is not a wrong
    # password: it does not count towards the account-wide and address-wide limits.
    if request is not None and not getattr(request, "axes_locked_out", False):
        login_policy.failure_record(request, username)
    actor = actor_from_request(request, label="anonymous") if request else SYSTEM
    services.login_failure_record(actor=actor, username=username)


@receiver(user_locked_out)
def _audit_lockout(sender: Any, request: HttpRequest, username: str, **kwargs: Any) -> None:
    actor = actor_from_request(request, label="anonymous") if request else SYSTEM
    services.login_lockout_record(actor=actor, username=username)
