"""What an uploaded file is called, made safe for each place the name goes."""

import re
import unicodedata

_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_ATTACHMENT_NAME = 200


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
    cleaned = "".join(" " if _is_unsafe_char(c) else c for c in name)
    return " ".join(cleaned.split()) or "unnamed"


def attachment_name(name: str) -> str:
    """A name for Content-Disposition and display: one line, no path, no spoofing."""
    cleaned = "".join(" " if _is_unsafe_char(c) else c for c in name)
    cleaned = re.sub(r'[\\/:*?"<>|]+', "_", cleaned)
    cleaned = " ".join(cleaned.split()).lstrip(". ")
    if len(cleaned) > MAX_ATTACHMENT_NAME:
        stem, dot, ext = cleaned.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        cleaned = cleaned[: MAX_ATTACHMENT_NAME - len(ext) - 1].rstrip() + (
            "." + ext if ext else ""
        )
    return cleaned or "download"


def content_type(value: str | None) -> str:
    """The browser's claimed type if it is well formed, else application/octet-stream."""
    value = (value or "").strip().lower()
    return value if _CONTENT_TYPE.match(value) else DEFAULT_CONTENT_TYPE
