"""The exception tree: one root, one branch per kind of failure; messages name the bad value."""


class VarstreamError(Exception):
    """Root of every error varstream raises on purpose."""


class ConfigError(VarstreamError):
    """The configuration is invalid (unknown key, bad value, unreachable service)."""


class DecodeError(VarstreamError):
    """A message is not a valid alert (bad bytes, bad schema, bad record): it goes to the dead-letter topic.

    `reason` is a short fixed token (bounded label value for metrics), the message the detail.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnusableAlert(VarstreamError):
    """A valid alert that carries nothing this classifier can use: skipped with a counted reason.

    Deliberately not a DecodeError: the alert is fine, so it must never reach the dead-letter topic.
    `reason` is one of broker.alerts.UNUSABLE_REASONS; `dropped` counts its discarded points by reason.
    """

    def __init__(self, reason: str, message: str, dropped: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.dropped = dict(dropped or {})


class ArchiveError(VarstreamError):
    """An archive file could not be read; the message names the file and line."""


class BundleError(VarstreamError):
    """A model bundle is missing, incomplete or incompatible."""


class DeliveryError(VarstreamError):
    """Kafka refused or lost a produced record; offsets must not be committed past it."""
