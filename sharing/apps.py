from django.apps import AppConfig


class SharingConfig(AppConfig):
    default = True
    name = "sharing"
    verbose_name = "Secure file sharing"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from securefiles.lib import malloc, sqlite_functions
        from sharing import checks, signals  # noqa: F401  (system checks, the blob receiver)

        # SQLite's LIKE folds ASCII only: the name search needs a Unicode casefold there.
        connection_created.connect(sqlite_functions.register, dispatch_uid="sqlite_casefold")
        # Uploads and downloads churn 1 MiB buffers: keep their pages instead of faulting
        # them in again for every segment (securefiles.lib.malloc, issue 12's figures).
        malloc.tune_for_streaming()
