"""Accounts' own rows: one-time recovery codes (users and TOTP devices are Django's
and django-otp's)."""

from django.conf import settings
from django.db import models


class RecoveryCode(models.Model):
    """A one-time code that stands in for a lost authenticator. Stored as SHA-256 only:
    each code carries 80 random bits, so a leaked table yields nothing to guess from."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes"
    )
    code_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The table keeps the name it had in the `sharing` app: moving the model moved no data.
        db_table = "sharing_recoverycode"

    def __str__(self) -> str:
        return f"recovery code of {self.user}"
