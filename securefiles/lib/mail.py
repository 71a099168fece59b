"""E-mail, sent by the job worker and never inside a request.

``send_later`` is the one way the portal sends mail: it queues a job (settings.TASKS) that
sends it with a bounded wait (EMAIL_TIMEOUT seconds) and, when the mail server fails or
does not answer, tries again later with a doubling delay (MAIL_RETRY_SECONDS, then twice
that, ...) up to MAIL_ATTEMPTS attempts in all; the last failure marks the job failed
(counted by jobs.selectors.failed_count) and is logged without the message.

Messages carry links with one-time tokens and, when the operator allows, file names, and
the queue is a database table: so the queued message is sealed (AES-256-GCM, RFC 5116,
under a key derived from SECRET_KEY with HKDF-SHA256, RFC 5869; securefiles.lib.sealed)
and the table holds no address, subject, body or token in clear. The job's row is the only
copy. A SECRET_KEY rotated the way Django documents (the old one kept in
SECRET_KEY_FALLBACKS until the queue has drained) still sends it; sealed under a key in
neither, the job fails without sending and says so in the log.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone
from django_tasks import task

from securefiles.lib.sealed import SealBroken, seal, unseal

logger = logging.getLogger(__name__)

_KEY_INFO = b"securefiles mail queue v1"


class MailNotSent(Exception):
    """The last attempt to send a queued message failed (the job is marked failed)."""


def send_later(*, subject: str, body: str, to: list[str], reason: str) -> None:
    """Queue a plain-text e-mail from DEFAULT_FROM_EMAIL to the addresses ``to``.

    Returns at once: the worker sends it. Called inside a transaction, the job is queued in
    that transaction (with the database queue): rolled back, nothing is sent. ``reason`` is
    a short word for the logs ("share", "invitation", "password-reset", ...), never
    personal data. The subject is folded onto one line: it often quotes what a user typed
    (a request's title), and a line break in it would make the send fail (Django's
    BadHeaderError), never a header. Raises ValueError for an empty ``to``.
    """
    if not to:
        raise ValueError("an e-mail needs at least one recipient")
    # One line: Django refuses a header with a line break (a request title may hold one).
    subject = " ".join(subject.split())
    message = {"subject": subject, "body": body, "to": to}
    deliver.enqueue(seal(message, purpose=_KEY_INFO), reason, 1)


@task()
def deliver(sealed: str, reason: str, attempt: int) -> str:
    """Send one queued message (the job send_later queues); "sent" or "retrying".

    Raises MailNotSent after the last attempt, so the job shows as failed.
    """
    try:
        message = unseal(sealed, purpose=_KEY_INFO)
    except SealBroken:
        # Not retried: another attempt would read the same bytes with the same keys.
        logger.error("e-mail not sent reason=%s error=SealBroken (SECRET_KEY changed?)", reason)
        raise MailNotSent(f"{reason} e-mail not sent: its sealed copy did not open") from None
    email = EmailMessage(message["subject"], message["body"], None, message["to"])
    try:
        email.send()
    except (OSError, smtplib.SMTPException) as exc:
        failure: Exception = exc
    else:
        return "sent"
    # Outside the except block: the job's recorded traceback does not chain the SMTP
    # error, whose text may quote an address.
    return _retry_or_fail(sealed, reason, attempt, failure)


def _retry_or_fail(sealed: str, reason: str, attempt: int, exc: Exception) -> str:
    error = type(exc).__name__  # never the message: an SMTP reply may quote an address
    retry = deliver.get_backend().supports_defer and attempt < settings.MAIL_ATTEMPTS
    if not retry:
        logger.error("e-mail not sent reason=%s attempts=%d error=%s", reason, attempt, error)
        raise MailNotSent(f"{reason} e-mail not sent after {attempt} attempt(s): {error}")
    delay = settings.MAIL_RETRY_SECONDS * 2 ** (attempt - 1)
    later = deliver.using(run_after=timezone.now() + timedelta(seconds=delay))
    later.enqueue(sealed, reason, attempt + 1)
    logger.warning(
        "e-mail not sent reason=%s attempt=%d error=%s; retrying in %d s",
        reason,
        attempt,
        error,
        delay,
    )
    return "retrying"
