"""filerequests' receiver: every recorded upload passes here (sharing's files_recording),
so files on their way into a request are accepted into it in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from django.dispatch import receiver

from audit.actors import Actor
from filerequests.selectors import visitor_upload_ids
from filerequests.services import request_accept
from securefiles.lib.auth_types import User
from sharing.models import ResumableUpload, StoredFile
from sharing.services.files import files_recording
from sharing.services.resumable import counting_unfinished


@receiver(files_recording, sender=StoredFile)
def _accept_into_request(
    *, owner: User, files: Sequence[StoredFile], actor: Actor, **kwargs: object
) -> None:
    request_accept(owner=owner, files=files, actor=actor)


@receiver(counting_unfinished, sender=ResumableUpload)
def _visitors_uploads(*, owner: User, **kwargs: object) -> QuerySet[Any, Any]:
    """Visitors' unfinished uploads into the owner's requests are not the owner's own."""
    return visitor_upload_ids(owner=owner)
