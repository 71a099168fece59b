"""SITE_URL: its validation, the e-mail link helper, and `check --deploy` while it is unset."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from securefiles.lib.site import absolute_url, site_url
from securefiles.settings import _site_url


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://files.example.org", "https://files.example.org"),
        ("https://files.example.org/", "https://files.example.org"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("", ""),
    ],
)
def test_it_accepts_a_scheme_and_host(given, kept) -> None:
    assert _site_url(given) == kept


@pytest.mark.parametrize(
    "given",
    [
        "files.example.org",
        "ftp://files.example.org",
        "javascript://files.example.org",
        "https://",
        "https://files.example.org/portal",
        "https://files.example.org?x=1",
        "https://files.example.org#top",
        "https://user:pw@files.example.org",
        "https://files.example.org:99999",
        "https://[::1",
    ],
)
def test_it_refuses_anything_else(given) -> None:
    with pytest.raises(ImproperlyConfigured, match="SITE_URL"):
        _site_url(given)


def test_it_builds_links_from_site_url(settings) -> None:
    settings.SITE_URL = "https://files.example.org:8443"

    assert site_url() == "https://files.example.org:8443"
    assert absolute_url("/files/1/") == "https://files.example.org:8443/files/1/"


@pytest.mark.parametrize(
    ("hosts", "https", "expected"),
    [
        (["files.example.org", "localhost"], True, "https://files.example.org"),
        (["files.example.org"], False, "http://files.example.org"),
        (["*", ".example.org"], True, "https://example.org"),
        (["*"], False, "http://localhost"),
        ([], False, "http://localhost"),
    ],
)
def test_it_falls_back_to_the_first_allowed_host(settings, hosts, https, expected) -> None:
    settings.SITE_URL = ""
    settings.ALLOWED_HOSTS = hosts
    settings.HTTPS = https

    assert site_url() == expected


@pytest.mark.parametrize("path", ["files/1/", "//evil.example/x", ""])
def test_it_refuses_a_path_that_is_not_absolute(settings, path) -> None:
    with pytest.raises(ValueError, match="absolute_url"):
        absolute_url(path)


def _deploy_check() -> str:
    out, err = StringIO(), StringIO()
    call_command("check", deploy=True, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


@pytest.mark.django_db
def test_check_deploy_warns_while_site_url_is_unset(settings) -> None:
    settings.SITE_URL = ""

    assert "sharing.W002" in _deploy_check()


@pytest.mark.django_db
def test_check_deploy_is_quiet_about_site_url_once_set(settings) -> None:
    settings.SITE_URL = "https://files.example.org"

    assert "sharing.W002" not in _deploy_check()
