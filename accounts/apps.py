from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django_otp.plugins.otp_totp.apps import DefaultConfig as TOTPConfig


class AccountsConfig(AppConfig):
    default = True
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401  (login audit and lockout receivers)


class SecureAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "accounts.admin_site.SecureAdminSite"


class SecondFactorsConfig(TOTPConfig):
    """django-otp's TOTP app under a name people read: the admin shows "Second factors"
    where it would show the app label "OTP_TOTP". Label and tables are unchanged."""

    default = False
    verbose_name = "Second factors"
