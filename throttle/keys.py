"""Every counter's name, built here and nowhere else (at most 200 characters, the column's
size). Client-typed text (usernames, e-mail addresses) is hashed: the counter table and
Redis never hold it as typed, and any length fits."""

from __future__ import annotations

import hashlib


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def login_account_key(username: str) -> str:
    """Failed logins against ``username`` from any address (accounts.login_policy)."""
    return f"login-account:{_digest(username)}"


def login_address_key(ip: str) -> str:
    """Failed logins from address ``ip`` against any account (accounts.login_policy)."""
    return f"login-address:{_digest(ip)}"


def second_factor_key(user_id: int) -> str:
    """Wrong second-factor codes for one account: at the code step and when removing it."""
    return f"otp-login:{user_id}"


def link_password_key(link_id: int) -> str:
    """Wrong passwords for one share link."""
    return f"link-password:{link_id}"


def password_reset_address_key(ip: str) -> str:
    """Password reset requests from one client address (audit.actors.client_ip)."""
    return f"password-reset-ip:{ip[:45]}"


def password_reset_account_key(email: str) -> str:
    """Password reset requests for one typed e-mail address, compared case-insensitively.

    Hashed: the counter table (or Redis) holds no address, and any length fits the column.
    """
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"password-reset-email:{digest}"


def share_lookup_key(user_id: int) -> str:
    """Share-by-name lookups by one user that matched no account."""
    return f"share-lookup:{user_id}"


def api_token_key(prefix: str) -> str:
    """Requests made with one personal access token (found by its public prefix)."""
    return f"api-token:{prefix[:8]}"


def api_session_key(user_id: int) -> str:
    """Requests to the HTTP API made by one user's browser sessions."""
    return f"api-session:{user_id}"


def file_request_password_key(request_id: int) -> str:
    """Wrong passwords for one file request."""
    return f"request-password:{request_id}"


def file_request_uploads_key(ip: str) -> str:
    """Uploads started through any file request from one client address."""
    return f"request-uploads-ip:{_digest(ip)}"
