"""Print a new bearer token for the Prometheus scraper, and the digest the portal keeps."""

import hashlib
import secrets

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Print a new random scrape token for /metrics (give it to Prometheus as its bearer "
        "token) and the METRICS_TOKEN_SHA256 line for the portal's environment. The portal "
        "keeps only the SHA-256 digest; the token is shown once and stored nowhere."
    )

    def handle(self, *args: object, **options: object) -> None:
        token = secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        self.stdout.write(f"token (for Prometheus' bearer_token): {token}")
        self.stdout.write(f"METRICS_TOKEN_SHA256={digest}")
