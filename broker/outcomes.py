"""What became of one consumed alert: exactly one of Annotated, Skipped(reason) or DeadLettered(reason).

The pipeline gives every message one of these, and the accounting identity
(alerts in = annotated + skipped + dead-lettered) is counted from them, never from reason strings.
Skipped means a valid alert this classifier does not answer now (a SKIP_REASONS value in
broker.metrics); DeadLettered means the message is not a valid alert, or varstream failed on it
(a DEAD_LETTER_REASONS value), and its bytes went to the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: keeps this module free of torch and the period search
    from broker.period import PeriodResult
    from broker.runtime import Classification


@dataclass(frozen=True)
class Annotated:
    """Classified: an annotation is published for the alert."""

    period: PeriodResult
    classification: Classification


@dataclass(frozen=True)
class Skipped:
    """A valid alert left unanswered, for a counted reason; `period` when the search ran."""

    reason: str
    period: PeriodResult | None = None


@dataclass(frozen=True)
class DeadLettered:
    """Not a valid alert (or an internal error): sent to the dead-letter topic with `reason`."""

    reason: str
    detail: str = ""


Outcome = Annotated | Skipped | DeadLettered
