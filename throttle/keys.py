"""Every counter's name, built here and nowhere else (at most 200 characters, the column's
size). Client-typed text (usernames, e-mail addresses) is hashed: the counter table and
Redis never hold it as typed, and any length fits."""

from __future__ import annotations

import hashlib
import ipaddress

# An IPv6 client is counted by its /64: one subscriber, host or VM usually holds a whole
# /64 (RFC 6177; RFC 4291 interface identifiers), so counting single addresses would give
# an attacker 2**64 fresh counters.
IPV6_COUNTED_PREFIX = 64


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def client_network(ip: str) -> str:
    """What an address-keyed counter counts for client address ``ip``: an IPv4 address as
    it is (also when written IPv4-mapped, ``::ffff:192.0.2.1``, or carried by 6to4 or
    Teredo), an IPv6 address as its /64 (``2001:db8:1:2::/64``; a zone id is dropped),
    anything unparsable as given.

    6to4 (2002::/16, RFC 3056) gives the holder of one IPv4 address a /48, 65536 /64s;
    a Teredo address (2001::/32, RFC 4380) holds its client's IPv4 address in its low 64
    bits, so its /64 would lump every client of one Teredo server together."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        carried = address.ipv4_mapped or address.sixtofour
        if carried is None and address.teredo is not None:
            carried = address.teredo[1]  # (server, client)
        if carried is not None:
            return str(carried)
        return str(ipaddress.IPv6Network((address, IPV6_COUNTED_PREFIX), strict=False))
    return str(address)


def login_account_key(username: str) -> str:
    """Failed logins against ``username`` from any address (accounts.login_policy)."""
    return f"login-account:{_digest(username)}"


def login_address_key(ip: str) -> str:
    """Failed logins from address ``ip`` (its /64 for IPv6: client_network) against any
    account (accounts.login_policy)."""
    return f"login-address:{_digest(client_network(ip))}"


def second_factor_key(user_id: int) -> str:
    """Wrong second-factor codes for one account: at the code step and when removing it."""
    return f"otp-login:{user_id}"


def link_password_key(link_id: int) -> str:
    """Wrong passwords for one share link."""
    return f"link-password:{link_id}"


def password_reset_address_key(ip: str) -> str:
    """Password reset requests from one client address (audit.actors.client_ip; an IPv6
    address counts as its /64: client_network)."""
    return f"password-reset-ip:{client_network(ip)[:49]}"


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
    """Uploads started through any file request from one client address (an IPv6 address
    counts as its /64: client_network)."""
    return f"request-uploads-ip:{_digest(client_network(ip))}"


def file_request_emails_key(user_id: int) -> str:
    """File-request links one user e-mailed from the portal."""
    return f"request-emails:{user_id}"


def share_notice_key(file_id: object, colleague_id: int) -> str:
    """E-mails telling one colleague that one file was shared with them."""
    return f"share-notice:{file_id}:{colleague_id}"
