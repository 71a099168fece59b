from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class SharingConfig(AppConfig):
    default = True
    name = "sharing"
    verbose_name = "Secure file sharing"

    def ready(self) -> None:
        from sharing import checks, services, signals  # noqa: F401  (checks, receivers)


class SecureAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "sharing.admin_site.SecureAdminSite"
