from django.apps import AppConfig


class SharingConfig(AppConfig):
    name = "sharing"
    verbose_name = "Secure file sharing"

    def ready(self) -> None:
        from sharing import checks, services, signals  # noqa: F401  (checks, receivers)
