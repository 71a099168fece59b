from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.selectors import verify_chain


def _parse_head(value: str) -> tuple[int, str]:
    seq, sep, mac = value.partition(":")
    if not sep or not seq.isdigit() or len(mac) != 64:
        raise CommandError("--expect-head takes SEQ:MAC, as printed by an earlier run")
    return int(seq), mac.lower()


class Command(BaseCommand):
    help = (
        "Walk the audit log's HMAC chain from the first entry. Exits 0 when every entry "
        "verifies, 1 naming the first entry that was edited, inserted or deleted. Prints the "
        "head (sequence number and MAC): record it elsewhere and pass it back with "
        "--expect-head to detect entries cut off the end."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--expect-head",
            metavar="SEQ:MAC",
            help="A head recorded earlier; fails if that entry is gone or differs.",
        )

    def handle(self, *args: object, **options: object) -> None:
        expected = options.get("expect_head")
        report = verify_chain(_parse_head(str(expected)) if expected else None)
        if not report.intact:
            raise CommandError(
                f"audit log BROKEN at entry #{report.broken_at}: {report.reason} "
                f"({report.checked} entries verified before it)",
                returncode=1,
            )
        self.stdout.write(f"audit log intact: {report.checked} entries verified")
        self.stdout.write(f"head: {report.head_seq}:{report.head_mac}")
