"""What an uploaded file is called, made safe for each place the name goes."""

import re
import unicodedata
from urllib.parse import quote

_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_ATTACHMENT_NAME = 200
_UNSAFE_IN_ATTACHMENT = '\\/:*?"<>|'


# WHATWG HTML's multipart/form-data encoding (what every current browser sends) escapes
# exactly three characters of a file name: '"' as %22, CR as %0D and LF as %0A; every
# other character is sent as is, and "%" itself is not escaped.
_MULTIPART_ESCAPES = {"%22": '"', "%0D": "\r", "%0A": "\n"}
_MULTIPART_ESCAPE = re.compile("%22|%0D|%0A")


def multipart_file_name(name: str) -> str:
    """The file name a browser was given, from the ``filename`` it sent in multipart.

    Undoes exactly the three escapes of WHATWG HTML ("%22", "%0D", "%0A", upper case as
    browsers send them) and nothing else. This is ambiguous by the standard's design: a
    file really called "my%22file.txt" arrives exactly as "my"file.txt" does, and is
    stored as the latter; there is no way to tell them apart. The result may hold CR or
    LF: display_name and attachment_name turn them into spaces wherever the name goes.
    """
    return _MULTIPART_ESCAPE.sub(lambda match: _MULTIPART_ESCAPES[match[0]], name)


def stored_name(name: str) -> str:
    """The name as given, minus NUL (no database stores it); never empty."""
    return name.replace("\x00", "") or "unnamed"


def _is_unsafe_char(char: str) -> bool:
    # Cc: control characters; Cf: format characters such as U+202E RIGHT-TO-LEFT OVERRIDE,
    # which make "evil<U+202E>fdp.exe" display as "evilexe.pdf"; Zl/Zp: line breaks.
    return unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Cs"}


def display_name(name: str) -> str:
    """A name to show in a page (HTML escaping does the rest): one line, and no control
    or bidi-override character that could make it read as another name."""
    if not (name.isascii() and name.isprintable()):  # else no character is unsafe
        name = "".join(" " if _is_unsafe_char(c) else c for c in name)
    return " ".join(name.split()) or "unnamed"


def attachment_name(name: str, keep: str = "") -> str:
    """A name for Content-Disposition and display: one line, no path, no spoofing.

    Characters that are special in file systems or in a quoted header value become "_",
    except those in ``keep`` (for RFC 5987's percent-encoded filename*); "\\" and "/" and
    control characters are always replaced.
    """
    cleaned = "".join(" " if _is_unsafe_char(c) else c for c in name)
    special = "".join(c for c in _UNSAFE_IN_ATTACHMENT if c not in keep or c in "\\/")
    cleaned = re.sub(f"[{re.escape(special)}]+", "_", cleaned)
    cleaned = " ".join(cleaned.split()).lstrip(". ")
    if len(cleaned) > MAX_ATTACHMENT_NAME:
        stem, dot, ext = cleaned.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        cleaned = cleaned[: MAX_ATTACHMENT_NAME - len(ext) - 1].rstrip() + (
            "." + ext if ext else ""
        )
    return cleaned or "download"


def ascii_fallback(name: str) -> str:
    """An ASCII-only stand-in for an attachment name, for clients that ignore
    ``filename*``: accents dropped ("é" -> "e"), every other character that is not
    printable ASCII, or that a file system or a quoted header refuses, as "_"."""
    # NFKD also maps look-alikes to ASCII ("＂" -> '"', "／" -> "/"): hence the re-check.
    decomposed = unicodedata.normalize("NFKD", name)
    kept = "".join(
        c if " " <= c <= "~" and c not in _UNSAFE_IN_ATTACHMENT else "_"
        for c in decomposed
        if unicodedata.category(c) != "Mn"
    )
    return kept.lstrip(". ") or "download"


def content_disposition(name: str) -> str:
    """The Content-Disposition header value that downloads ``name`` as an attachment.

    An ASCII name goes in ``filename="..."``. Any other name goes in RFC 5987's
    ``filename*=utf-8''...`` with an ASCII ``filename="..."`` fallback before it, as
    RFC 6266 section 4.3 recommends (clients that understand filename* prefer it). The
    name is made safe by attachment_name first, so it holds no quote, backslash, CR or LF.
    """
    safe = attachment_name(name)
    # filename* is percent-encoded, so it can keep what the quoted form must drop (a '"'
    # in `my "draft".txt`); path separators and control characters never pass.
    star = attachment_name(name, keep='"*:<>?|')
    if star == safe and safe.isascii():
        return f'attachment; filename="{safe}"'
    return (
        f"attachment; filename=\"{ascii_fallback(safe)}\"; filename*=utf-8''{quote(star, safe='')}"
    )


def content_type(value: str | None) -> str:
    """The browser's claimed type if it is well formed, else application/octet-stream."""
    value = (value or "").strip().lower()
    return value if _CONTENT_TYPE.match(value) else DEFAULT_CONTENT_TYPE
