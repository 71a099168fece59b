"""Failure counters every worker shares (the database store; Redis needs no model)."""

from django.db import models


class ThrottleCounter(models.Model):
    """A fixed-window counter every worker shares (the database is the default store)."""

    key = models.CharField(max_length=200, unique=True)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        # The table keeps the name it had in the `sharing` app: moving the model moved no data.
        db_table = "sharing_throttlecounter"

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
