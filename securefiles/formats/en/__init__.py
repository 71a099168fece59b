"""English formats: every date-time and time names its zone."""
