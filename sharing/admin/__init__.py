"""Admin: metadata, shares, links and the audit log. No admin page can read a file's content.

Every change an administrator makes through these pages is itself audit-logged.
"""

from sharing.admin import files, links, shares, users  # noqa: F401  (registers the admins)
