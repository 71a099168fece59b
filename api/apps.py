from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The HTTP API under /api/v1/: above sharing, it calls sharing's services and
    selectors and accounts' token authentication; no other app imports it."""

    name = "api"
    verbose_name = "HTTP API"
