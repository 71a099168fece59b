"""Writes: every change to files, shares, links and their owners goes through here, each in
a transaction with its audit entry. One module per subject (files, shares, links, users,
maintenance); callers use the names below, e.g. `services.file_delete(...)`."""

from sharing.services.files import (
    FileGone,
    QuotaExceeded,
    file_access_denied,
    file_create_many,
    file_delete,
    file_download_record,
    file_integrity_failed,
    file_transfer,
    files_purge_expired,
)
from sharing.services.links import (
    LINK_TOKEN_BYTES,
    LinkPasswordOutcome,
    link_claim_download,
    link_create,
    link_password_check,
    link_release_download,
    link_revoke,
    links_purge_expired,
)
from sharing.services.maintenance import (
    ContentMismatch,
    content_reencrypted_record,
    file_content_copy,
    file_create_imported,
    file_replace_content,
    file_rewrap_key,
    keys_rotated_record,
)
from sharing.services.shares import (
    ShareError,
    ShareLookupThrottled,
    share_grant,
    share_revoke,
)
from sharing.services.users import (
    user_change_record,
    user_deactivate,
    user_delete,
    user_offboard,
    user_state_changes,
)

__all__ = [
    "ContentMismatch",
    "FileGone",
    "LINK_TOKEN_BYTES",
    "LinkPasswordOutcome",
    "QuotaExceeded",
    "ShareError",
    "ShareLookupThrottled",
    "content_reencrypted_record",
    "file_access_denied",
    "file_content_copy",
    "file_create_imported",
    "file_create_many",
    "file_delete",
    "file_download_record",
    "file_integrity_failed",
    "file_replace_content",
    "file_rewrap_key",
    "file_transfer",
    "files_purge_expired",
    "keys_rotated_record",
    "link_claim_download",
    "link_create",
    "link_password_check",
    "link_release_download",
    "link_revoke",
    "links_purge_expired",
    "share_grant",
    "share_revoke",
    "user_change_record",
    "user_deactivate",
    "user_delete",
    "user_offboard",
    "user_state_changes",
]
