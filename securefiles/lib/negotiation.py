"""Which format an answer takes: JSON for the page's scripts, HTML for everyone else."""

from django.http import HttpRequest

JSON = "application/json"
HTML = "text/html"


def prefers_json(request: HttpRequest) -> bool:
    """True when the request's Accept header prefers JSON to HTML (the upload script sends
    ``Accept: application/json``); False for browsers' navigations, ``*/*`` and no Accept."""
    if JSON not in request.headers.get("Accept", ""):
        return False  # "*/*" alone, or nothing: a person's browser or curl gets a page
    return request.get_preferred_type([HTML, JSON]) == JSON
