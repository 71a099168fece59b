"""Admin of the sharing app: users (with their files and quotas), files, shares and links; the
audit log's admin is audit.admin, second factors' accounts.admin. No admin page can read a
file's content.

Every change an administrator makes through these pages is itself audit-logged.
"""

from sharing.admin import files, links, shares, users  # noqa: F401  (registers the admins)
