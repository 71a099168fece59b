"""Reads: every lookup of a file goes through a function that takes the user."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from sharing.crypto import DecryptingReader, unwrap_key
from sharing.keyring import get_keyring
from sharing.models import StoredFile
from sharing.storage import get_encrypted_storage


def files_owned_by(*, user: AbstractBaseUser) -> QuerySet[StoredFile]:
    return StoredFile.objects.filter(owner=user).order_by("-created_at", "-id")


def file_get_for_owner(*, user: AbstractBaseUser, file_id: uuid.UUID) -> StoredFile:
    """The file, if this user owns it; 404 otherwise (same answer whether it exists)."""
    try:
        return StoredFile.objects.get(pk=file_id, owner=user)
    except StoredFile.DoesNotExist:
        raise Http404("No such file") from None


def file_get_for_reader(*, user: AbstractBaseUser, file_id: uuid.UUID) -> StoredFile:
    """The file, if this user may download it; 404 otherwise."""
    return file_get_for_owner(user=user, file_id=file_id)


def file_open_plaintext(*, file: StoredFile) -> DecryptingReader:
    """Open the content of a file the caller is already allowed to read.

    Raises KeyUnwrapError (key gone or wrong), BlobIntegrityError (blob tampered) or
    OSError (blob missing); the reader raises BlobIntegrityError on any later segment.
    """
    master = get_keyring().get(file.key_id)
    key = unwrap_key(bytes(file.wrapped_key), file.id, master)
    return get_encrypted_storage().open_plaintext(file.blob.name, key)
