from django.apps import AppConfig


class FileRequestsConfig(AppConfig):
    default = True
    name = "filerequests"
    verbose_name = "File requests"

    def ready(self) -> None:
        from filerequests import receivers  # noqa: F401  (accepts files into their request)
