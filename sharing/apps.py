from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django_otp.plugins.otp_totp.apps import DefaultConfig as TOTPConfig


class SharingConfig(AppConfig):
    default = True
    name = "sharing"
    verbose_name = "Secure file sharing"

    def ready(self) -> None:
        from sharing import checks, services, signals  # noqa: F401  (checks, receivers)


class SecureAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "sharing.admin_site.SecureAdminSite"


class SecondFactorsConfig(TOTPConfig):
    """django-otp's TOTP app under a name people read: the admin shows "Second factors"
    where it would show the app label "OTP_TOTP". Label and tables are unchanged."""

    default = False
    verbose_name = "Second factors"
