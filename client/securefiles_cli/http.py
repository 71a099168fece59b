"""Requests to the portal: the bearer token on each, problem documents turned into one
readable line and an exit code."""

from __future__ import annotations

from typing import Any

import requests

from securefiles_cli import __version__
from securefiles_cli.config import Settings
from securefiles_cli.errors import AUTH, FAILED, NETWORK, NOT_FOUND, CliError

TIMEOUT = (10, 120)  # seconds to connect, seconds between bytes


class Portal:
    """A session with the portal at ``settings.url`` authenticated by its token."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.url
        self.token = settings.token
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {settings.token}"
        self.session.headers["User-Agent"] = f"securefiles-cli/{__version__}"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """``method`` on ``/api/v1`` + ``path``; the response if 2xx, else CliError."""
        try:
            response = self.session.request(
                method, f"{self.url}/api/v1{path}", timeout=TIMEOUT, **kwargs
            )
        except requests.RequestException as exc:
            raise CliError(f"cannot reach {self.url}: {type(exc).__name__}", NETWORK) from None
        if response.status_code >= 400:
            raise error_of(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()


def error_of(response: requests.Response) -> CliError:
    """A CliError saying what a refusal means: the problem document's detail or title."""
    message = f"HTTP {response.status_code}"
    try:
        problem = response.json()
        message = problem.get("detail") or problem.get("title") or message
        errors = problem.get("errors") or []
        if errors:
            first = errors[0]
            message += f": {'.'.join(map(str, first.get('loc', [])[1:]))} {first.get('msg', '')}"
    except ValueError:
        pass
    code = {401: AUTH, 403: AUTH, 404: NOT_FOUND}.get(response.status_code, FAILED)
    if response.status_code == 401:
        message = f"{message} (log in again with `securefiles login URL`)"
    return CliError(message, code)
