"""Reads: every lookup of a file goes through a function that takes the user."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from sharing.crypto import DecryptingReader, unwrap_key
from sharing.keyring import get_keyring
from sharing.models import AuditEntry, Share, ShareLink, StoredFile
from sharing.storage import get_encrypted_storage

# What secrets.token_urlsafe(32) produces: 43 characters of the URL-safe alphabet.
LINK_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def files_owned_by(*, user: AbstractBaseUser) -> QuerySet[StoredFile]:
    return StoredFile.objects.filter(owner=user).order_by("-created_at", "-id")


def file_get_for_owner(*, user: AbstractBaseUser, file_id: uuid.UUID) -> StoredFile:
    """The file, if this user owns it; 404 otherwise (same answer whether it exists)."""
    try:
        return StoredFile.objects.get(pk=file_id, owner=user)
    except StoredFile.DoesNotExist:
        raise Http404("No such file") from None


def file_get_for_reader(*, user: AbstractBaseUser, file_id: uuid.UUID) -> StoredFile:
    """The file, if this user owns it or it is shared with them; 404 otherwise."""
    readable = Q(owner=user) | Q(shares__colleague=user)
    found = StoredFile.objects.filter(readable, pk=file_id).distinct().first()
    if found is None:
        raise Http404("No such file")
    return found


def file_exists(*, file_id: uuid.UUID) -> StoredFile | None:
    """For the audit log only: whether a denied request named a real file."""
    return StoredFile.objects.filter(pk=file_id).only("id", "name").first()


def files_shared_with(*, user: AbstractBaseUser) -> QuerySet[StoredFile]:
    return (
        StoredFile.objects.filter(shares__colleague=user)
        .select_related("owner")
        .order_by("-created_at", "-id")
    )


def shares_of(*, file: StoredFile) -> QuerySet[Share]:
    return file.shares.select_related("colleague").order_by("created_at", "id")


def links_of(*, file: StoredFile) -> QuerySet[ShareLink]:
    return file.links.order_by("-created_at", "-id")


def share_get_for_owner(*, user: AbstractBaseUser, file: StoredFile, share_id: int) -> Share:
    try:
        return Share.objects.select_related("colleague").get(
            pk=share_id, file=file, file__owner=user
        )
    except Share.DoesNotExist:
        raise Http404("No such share") from None


def link_get_for_owner(*, user: AbstractBaseUser, file: StoredFile, link_id: int) -> ShareLink:
    try:
        return ShareLink.objects.get(pk=link_id, file=file, file__owner=user)
    except ShareLink.DoesNotExist:
        raise Http404("No such link") from None


def link_get_by_token(*, token: str) -> ShareLink:
    """The usable link for a token; one 404 for unknown, expired, revoked and used up."""
    if not LINK_TOKEN_RE.fullmatch(token):
        raise Http404("No such link")
    digest = hashlib.sha256(token.encode()).hexdigest()
    link = (
        ShareLink.objects.select_related("file", "file__owner").filter(token_digest=digest).first()
    )
    # The row was found by an index on the digest; compare again in constant time so that
    # no code path depends on a byte-by-byte comparison of secrets.
    if (
        link is None
        or not hmac.compare_digest(link.token_digest, digest)
        or not link_is_usable(link)
    ):
        raise Http404("No such link")
    return link


def link_is_usable(link: ShareLink) -> bool:
    if link.revoked_at is not None or link.expires_at <= timezone.now():
        return False
    return link.max_downloads is None or link.download_count < link.max_downloads


def activity_of(*, user: AbstractBaseUser, file: StoredFile) -> QuerySet[AuditEntry]:
    """The audit entries of a file, for its owner."""
    if file.owner_id != user.pk:
        raise Http404("No such file")
    return AuditEntry.objects.filter(file_id=file.id).order_by("-seq")


def file_open_plaintext(*, file: StoredFile) -> DecryptingReader:
    """Open the content of a file the caller is already allowed to read.

    Raises KeyUnwrapError (key gone or wrong), BlobIntegrityError (blob tampered) or
    OSError (blob missing); the reader raises BlobIntegrityError on any later segment.
    """
    master = get_keyring().get(file.key_id)
    key = unwrap_key(bytes(file.wrapped_key), file.id, master)
    return get_encrypted_storage().open_plaintext(file.blob.name, key)
