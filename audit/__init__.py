"""The tamper-evident audit log: recording (a service) and chain verification (a selector)."""
