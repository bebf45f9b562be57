"""The exception tree: one root, one branch per kind of failure; messages name the bad value."""


class VarstreamError(Exception):
    """Root of every error varstream raises on purpose."""


class ConfigError(VarstreamError):
    """The configuration is invalid (unknown key, bad value, unreachable service)."""


class DecodeError(VarstreamError):
    """A message could not be turned into an alert; the reason goes to the dead-letter topic.

    `reason` is a short fixed token (bounded label value for metrics), the message the detail.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ArchiveError(VarstreamError):
    """An archive file could not be read; the message names the file and line."""


class BundleError(VarstreamError):
    """A model bundle is missing, incomplete or incompatible."""


class DeliveryError(VarstreamError):
    """Kafka refused or lost a produced record; offsets must not be committed past it."""
