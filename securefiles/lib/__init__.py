"""Plain helpers every app may use; they import no app (healthchecks keeps its own in hc/lib)."""
