"""Audit log entries for authentication, and offboarding when a user is deactivated."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest

from sharing import login_policy, services
from sharing.audit import SYSTEM, Event, actor_from_request, audit_record
from sharing.auth_types import User


@receiver(user_logged_in)
def _audit_login(sender: type, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    audit_record(event=Event.LOGIN, actor=actor_from_request(request, user=user))


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
    audit_record(event=Event.LOGIN_FAILED, actor=actor, detail=f"username={username}")


@receiver(pre_save, sender=User)
def _remember_active(sender: type[User], instance: Any, **kwargs: Any) -> None:
    if instance.pk:
        previous = sender.objects.filter(pk=instance.pk).values_list("is_active", flat=True).first()
        instance._was_active = previous
    else:
        instance._was_active = None


# Set on a user instance by a caller that runs services.user_offboard itself, with its own
# actor (the admin's user form does): the receiver below then leaves it alone.
OFFBOARDED_BY_CALLER = "_offboarded_by_caller"


@receiver(post_save, sender=User)
def _offboard_on_deactivation(sender: type, instance: Any, created: bool, **kwargs: Any) -> None:
    if getattr(instance, OFFBOARDED_BY_CALLER, False):
        return
    if not created and getattr(instance, "_was_active", None) and not instance.is_active:
        # Code that saves a deactivated user: offboarded as the system's act.
        services.user_offboard(user=instance, actor=SYSTEM)


@receiver(user_locked_out)
def _audit_lockout(sender: Any, request: HttpRequest, username: str, **kwargs: Any) -> None:
    actor = actor_from_request(request, label="anonymous") if request else SYSTEM
    audit_record(event=Event.LOGIN_LOCKED_OUT, actor=actor, detail=f"username={username[:150]}")
