"""Failure counters shared by every worker, for lockouts and rate limits."""
