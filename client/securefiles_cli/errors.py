"""What can go wrong, each with the exit code the command ends with (README "Exit codes")."""

from __future__ import annotations

OK = 0
FAILED = 1  # anything else: the server refused (4xx/5xx), a file could not be read
USAGE = 2  # bad arguments (argparse's own code)
AUTH = 3  # no token configured, or the server refused it (401) or its scope (403)
NOT_FOUND = 4  # no such file, or none you may see
VERIFY = 5  # a download did not match the SHA-256 the server reported
NETWORK = 6  # the server could not be reached or the connection broke
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT): run the command again to continue


class CliError(Exception):
    """An error shown as one line, ending the command with ``code``."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code
