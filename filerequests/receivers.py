"""filerequests' receiver: every recorded upload passes here (sharing's files_recording),
so files on their way into a request are accepted into it in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence

from django.dispatch import receiver

from audit.actors import Actor
from filerequests.services import request_accept
from securefiles.lib.auth_types import User
from sharing.models import StoredFile
from sharing.services.files import files_recording


@receiver(files_recording, sender=StoredFile)
def _accept_into_request(
    *, owner: User, files: Sequence[StoredFile], actor: Actor, **kwargs: object
) -> None:
    request_accept(owner=owner, files=files, actor=actor)
