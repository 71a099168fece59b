"""Audit entries and lockout counts for logging in (Django and django-axes signal these,
there is no other hook), and privilege changes made outside the admin (createsuperuser,
a shell). Connected in AccountsConfig.ready."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_save, pre_save
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


# Privileges changed without the admin (createsuperuser, a shell, a script) are recorded
# too: the admin's paths record their own entries and mark the instance (PRIVILEGES_AUDITED).
_BEFORE = "_securefiles_privileges_before"


def _audited_elsewhere(instance: Any, raw: bool, update_fields: Any) -> bool:
    if raw or getattr(instance, services.PRIVILEGES_AUDITED, False):
        return True
    # A login's last_login update, a password change: no flag in the save, nothing to read.
    return update_fields is not None and not set(update_fields) & set(services.PRIVILEGE_FIELDS)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def _privileges_before(
    sender: type, instance: Any, raw: bool = False, update_fields: Any = None, **kwargs: Any
) -> None:
    if not _audited_elsewhere(instance, raw, update_fields):
        setattr(instance, _BEFORE, (services.privileges_of(user_id=instance.pk),))


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def _privileges_record(sender: type, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    before = instance.__dict__.pop(_BEFORE, None)
    if before is not None and not raw:
        services.privilege_change_record(user=instance, before=before[0], actor=SYSTEM)
