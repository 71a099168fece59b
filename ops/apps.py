from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Probes and metrics for operators: /healthz, /readyz and /metrics (ops.middleware).

    Above sharing, like api: it reads the other apps' state, and no app imports it (they
    move metrics through securefiles.lib.metrics). ``ready`` registers the readiness checks
    and scrape-time gauges of ops.registry.
    """

    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from jobs import selectors as jobs_selectors
        from ops import checks, registry

        registry.register_check("database", checks.database)
        registry.register_check("migrations", checks.migrations)
        registry.register_check("storage", checks.storage)
        registry.register_check("keys", checks.keys)
        registry.register_check("throttle", checks.throttle_counters)
        # Background jobs (the `jobs` app): its queue table, and how deep and how failed.
        registry.register_check("queue", jobs_selectors.queue_reachable)
        registry.register_gauge(
            "securefiles_jobs_queued", "Jobs waiting in the queue.", jobs_selectors.queue_depth
        )
        registry.register_gauge(
            "securefiles_jobs_failed", "Jobs that failed for good.", jobs_selectors.failed_count
        )
