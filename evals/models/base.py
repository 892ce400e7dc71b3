"""What several evals tables share: immutability, and the shape of a scorer's result."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

SCORE_RANGE = Q(score__gte=0) & Q(score__lte=1)
# A scorer's result is either a score with a verdict and no error, or an error with neither:
# an error is never counted as a failure.
SCORE_OR_ERROR = (Q(error="") & Q(score__isnull=False) & Q(passed__isnull=False) & SCORE_RANGE) | (
    ~Q(error="") & Q(score__isnull=True) & Q(passed__isnull=True)
)


class ImmutableModel(models.Model):
    """Refuses `save()` on a stored row: a change is a new row (a new version)."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValidationError(f"{type(self).__name__} rows are immutable; create a new version instead.")
        super().save(*args, **kwargs)
