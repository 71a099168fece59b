from django.core.management.base import BaseCommand, CommandParser

from sharing.crypto import KeyConfigError, generate_key_entry


class Command(BaseCommand):
    help = (
        "Print a new ENCRYPTION_KEYS entry, <id>:<urlsafe base64 of 32 random bytes>. "
        "Put it first in ENCRYPTION_KEYS to make it the primary key, then run rotate_keys. "
        "Works with no key configured."
    )
    # Must run before any key exists, so the key check must not stop it.
    requires_system_checks: list = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", default="k1", help="Key id (1-32 of A-Z a-z 0-9 _ . -).")

    def handle(self, *args: object, **options: object) -> None:
        try:
            entry = generate_key_entry(str(options["id"]))
        except KeyConfigError as exc:
            self.stderr.write(str(exc))
            raise SystemExit(2) from None
        self.stdout.write(entry)
