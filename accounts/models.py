"""Accounts' own rows: one-time recovery codes and invitations (users and TOTP devices are
Django's and django-otp's)."""

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


class AccessToken(models.Model):
    """A personal access token for the HTTP API and the tus endpoint (README "HTTP API").

    The token is ``sf_`` + 8 characters of public id (``prefix``, 48 random bits) + 43
    characters of secret (256 random bits, base64url): 54 characters a secret scanner
    can match with ``sf_[A-Za-z0-9_-]{51}``. Only the SHA-256 of the whole token is
    stored: the secret is 256 random bits, so there is nothing to guess from a leaked
    digest, and a slow password hash would only add time to every API request. A token
    is found by its prefix and then compared by digest in constant time.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    # Comma-separated, from accounts.tokens.SCOPES ("read,write,share").
    scopes = models.CharField(max_length=40, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_ip = models.CharField(max_length=45, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"sf_{self.prefix}… ({self.name}) of {self.user}"

    @property
    def scope_list(self) -> list[str]:
        """The scopes as a list, e.g. ["read", "write"]."""
        return [scope for scope in self.scopes.split(",") if scope]


class Invitation(models.Model):
    """A new user's one-time link to choose a password (README "Invitations").

    One per user: sending again replaces the row, so the previous link stops working.
    Only the SHA-256 of the link's token (256 random bits) is stored, so the row can be
    found by it and a leaked table opens no account. Accepting deletes the row.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="invitation"
    )
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"invitation of {self.user}"


class OIDCIdentity(models.Model):
    """The link between a user and their account at the OpenID provider: the provider's
    ``iss`` and ``sub`` (OpenID Connect Core 1.0, section 2: unique and never reassigned
    within an issuer), never the e-mail address, which people and providers change."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identities"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="one_user_per_oidc_sub")
        ]
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer}"


class Passkey(models.Model):
    """A WebAuthn credential (a passkey) a user registered: a second factor, and a way to
    sign in without a password (README "Passkeys"). Only public data is stored: the
    credential's id and public key (COSE), and the signature counter the authenticator
    last reported (WebAuthn Level 3, section 6.1.1: a counter that does not grow marks a
    possibly cloned authenticator, and the sign-in is refused)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="passkeys"
    )
    name = models.CharField(max_length=100)
    # base64url of the credential id (at most 1023 bytes, WebAuthn section 5.1): indexed.
    credential_id = models.CharField(max_length=1400, unique=True)
    public_key = models.BinaryField(editable=False)
    sign_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"passkey {self.name!r} of {self.user}"
