from django.apps import AppConfig


class JobsConfig(AppConfig):
    default = True
    name = "jobs"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"
