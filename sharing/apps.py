from django.apps import AppConfig


class SharingConfig(AppConfig):
    default = True
    name = "sharing"
    verbose_name = "Secure file sharing"

    def ready(self) -> None:
        from sharing import checks, signals  # noqa: F401  (system checks, the blob receiver)
