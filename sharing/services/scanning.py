"""Malware scanning with ClamAV: every upload path streams its plaintext to clamd.

Off unless CLAMD_SOCKET or CLAMD_HOST is set. The upload paths use three things:

- ``scan_start()`` opens one file's scan (a Scan, or None with scanning off); the path
  ``feed``s it each plaintext chunk as the chunk is encrypted, then ``finish``es it.
- ``scan_check(...)`` turns the outcome into the StoredFile.ScanState to store, applying
  the policy for who uploads (a logged-in user, or a file-request ``visitor``), or raises
  a ScanRefused (MalwareFound, ScannerUnavailable, TooLargeToScan). On MalwareFound it has
  already called ``scan_refused`` (audit entry, and the owner told for visitors' uploads).
- The caller then stores nothing: no blob, no row (each path deletes what it wrote).

A Scan never raises while fed: a daemon that fails or a stream past clamd's limit is
remembered and reported by ``finish``, so the encryption goes on and the policy decides.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.actors import Actor
from audit.events import Event
from audit.services import audit_record
from securefiles.lib import clamd, site
from securefiles.lib.auth_types import User
from securefiles.lib.mail import send_later
from sharing import names
from sharing.models import StoredFile
from sharing.storage.uploads import EncryptedUpload

logger = logging.getLogger(__name__)

ScanState = StoredFile.ScanState


class ScanRefused(Exception):
    """The file is refused by the malware scan: ``status`` is the HTTP status to answer,
    ``message`` what the uploader reads (``reason`` unless given)."""

    status = 422
    reason: Promise | str = ""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or str(self.reason))

    @property
    def message(self) -> str:
        return str(self)


class MalwareFound(ScanRefused):
    """clamd found malware; ``signature`` is its name (e.g. "Eicar-Test-Signature")."""

    def __init__(self, signature: str) -> None:
        self.signature = signature
        super().__init__(
            _("Malware was found in this file (%(signature)s). Nothing was stored.")
            % {"signature": signature}
        )


class ScannerUnavailable(ScanRefused):
    """clamd could not give a verdict and the policy is fail-closed (503: try later)."""

    status = 503
    reason = gettext_lazy(
        "The malware scanner is unavailable, so the file was not accepted. Nothing was "
        "stored; please try again later."
    )


class TooLargeToScan(ScanRefused):
    """The file is past clamd's StreamMaxLength, or an archive past one of its scan limits
    (AlertExceedsMax), and the policy is to refuse it (413)."""

    status = 413
    reason = gettext_lazy(
        "The file is larger than the malware scanner accepts (or is an archive it cannot "
        "scan whole), and unscanned files are not accepted here. Nothing was stored."
    )


@dataclass(frozen=True)
class ScanOutcome:
    """What one scan ended with: a ScanState (CLEAN, TOO_LARGE, UNAVAILABLE, ENCRYPTED;
    OFF with scanning off) or, with ``signature`` set, malware found."""

    state: str
    signature: str = ""


OFF = ScanOutcome(ScanState.OFF)


class Scan:
    """One file's INSTREAM scan, fed in file order; never raises until ``finish``."""

    def __init__(self, address: clamd.Address, timeout: float) -> None:
        self._stream: clamd.InStream | None = None
        self._failed: str = ""  # the ScanState once the scan cannot give a verdict
        try:
            self._stream = clamd.InStream(address, timeout)
        except clamd.ClamdUnavailable as exc:
            self._fail(ScanState.UNAVAILABLE, exc)

    def feed(self, chunk: bytes | memoryview) -> None:
        """Pass the next plaintext chunk to clamd (held by clamd in its TemporaryDirectory,
        which must be on tmpfs: README, "Malware scanning")."""
        if self._stream is None:
            return
        try:
            self._stream.send(chunk)
        except clamd.StreamLimitExceeded as exc:
            self._fail(ScanState.TOO_LARGE, exc)
        except clamd.ClamdUnavailable as exc:
            self._fail(ScanState.UNAVAILABLE, exc)

    def finish(self) -> ScanOutcome:
        """End the stream and wait (CLAMD_TIMEOUT_SECONDS at most) for the verdict."""
        if self._stream is None:
            return ScanOutcome(self._failed)
        try:
            signature = self._stream.verdict()
        except clamd.StreamLimitExceeded as exc:
            self._fail(ScanState.TOO_LARGE, exc)
            return ScanOutcome(self._failed)
        except clamd.ClamdUnavailable as exc:
            self._fail(ScanState.UNAVAILABLE, exc)
            return ScanOutcome(self._failed)
        except clamd.EncryptedContent:
            # Stored, and marked as what it is: a password-protected archive that nobody
            # scanned (lawyers and clinics send them daily; "clean" would be a lie).
            self._stream = None
            return ScanOutcome(ScanState.ENCRYPTED)
        self._stream = None
        return ScanOutcome(ScanState.CLEAN, signature or "")

    def abandon(self) -> None:
        """Drop the scan (the upload failed for another reason)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _fail(self, state: str, exc: Exception) -> None:
        if state == ScanState.UNAVAILABLE:
            logger.warning("malware scan failed: %s", exc)
        self.abandon()
        self._failed = state


def scanning_enabled() -> bool:
    """Whether CLAMD_SOCKET or CLAMD_HOST is set."""
    return bool(settings.CLAMD_SOCKET or settings.CLAMD_HOST)


def scan_start() -> Scan | None:
    """A new scan for one file, or None while scanning is off. Never raises: an
    unreachable clamd is reported by the scan's ``finish``."""
    if not scanning_enabled():
        return None
    address = clamd.Address(
        path=settings.CLAMD_SOCKET, host=settings.CLAMD_HOST, port=settings.CLAMD_PORT
    )
    return Scan(address, settings.CLAMD_TIMEOUT_SECONDS)


def scan_check(
    outcome: ScanOutcome,
    *,
    visitor: bool,
    owner: User,
    file_id: uuid.UUID,
    file_name: str,
    size: int,
    actor: Actor,
    source: str = "",
) -> str:
    """The ScanState to store for a file whose scan ended with ``outcome``, by the policy
    for its uploader: a logged-in user (CLAMD_FAIL_OPEN, CLAMD_OVER_LIMIT) or a file-request
    ``visitor`` (CLAMD_FAIL_OPEN_VISITORS, CLAMD_OVER_LIMIT_VISITORS).

    Raises MalwareFound (after ``scan_refused`` recorded it), ScannerUnavailable (clamd
    gave no verdict, fail-closed) or TooLargeToScan (past clamd's stream limit, refused).
    ``size`` in bytes; ``source`` says where it came from for the owner's e-mail (e.g. the
    file request's title).
    """
    if outcome.signature:
        scan_refused(
            owner=owner,
            file_id=file_id,
            file_name=file_name,
            size=size,
            signature=outcome.signature,
            actor=actor,
            notify_owner=visitor,
            source=source,
        )
        raise MalwareFound(outcome.signature)
    if outcome.state == ScanState.UNAVAILABLE:
        fail_open = settings.CLAMD_FAIL_OPEN_VISITORS if visitor else settings.CLAMD_FAIL_OPEN
        if not fail_open:
            raise ScannerUnavailable
    if outcome.state == ScanState.TOO_LARGE:
        policy = settings.CLAMD_OVER_LIMIT_VISITORS if visitor else settings.CLAMD_OVER_LIMIT
        if policy == "refuse":
            raise TooLargeToScan
    return outcome.state


def scan_check_uploads(
    uploads: list[EncryptedUpload],
    *,
    visitor: bool,
    owner: User,
    actor: Actor,
    source: str = "",
) -> None:
    """Set each form-uploaded file's ``scan_state`` by scan_check's policy (skipping files
    not scanned: scanning off). The whole post is refused if one file is: raises what
    scan_check raises, at the first refused file."""
    for upload in uploads:
        if upload.scan_outcome is None:
            continue  # scanning is off: the row's default, "not scanned"
        upload.scan_state = scan_check(
            upload.scan_outcome,
            visitor=visitor,
            owner=owner,
            file_id=upload.key.file_id,
            file_name=names.stored_name(upload.name or ""),
            size=upload.blob.plaintext_size,
            actor=actor,
            source=source,
        )


def scan_refused(
    *,
    owner: User,
    file_id: uuid.UUID,
    file_name: str,
    size: int,
    signature: str,
    actor: Actor,
    notify_owner: bool,
    source: str = "",
) -> None:
    """Record that a file was refused for malware: an audit entry (file.malware_refused,
    detail "signature=<name, percent-encoded> size=<bytes>", file_id the id the file
    would have had), and
    with ``notify_owner`` an e-mail to ``owner`` naming the signature and ``source`` (the
    file request), not the file. Commits on its own; a mail failure is logged, not raised.
    """
    with transaction.atomic():
        audit_record(
            event=Event.MALWARE_REFUSED,
            actor=actor,
            file_id=file_id,
            file_name=file_name,
            # Percent-encoded (RFC 3986): a name from the database may hold spaces and
            # "=", and must stay one field ("size=0" in it would read as the size).
            detail=f"signature={quote(signature, safe='')} size={size}",
        )
    if notify_owner and owner.email:
        _notify_owner(owner=owner, signature=signature, source=source)


def _notify_owner(*, owner: User, signature: str, source: str) -> None:
    context = {
        "owner": owner,
        "signature": signature,
        "source": source,
        "portal_url": site.absolute_url(reverse("sharing:home")),
    }
    subject = _("A file sent to you was refused: malware found")
    body = render_to_string("sharing/email/malware_refused.txt", context)
    # Queued: the worker sends it and retries a failing mail server (securefiles.lib.mail).
    send_later(subject=str(subject), body=body, to=[owner.email], reason="malware")
