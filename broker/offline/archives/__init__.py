"""Survey archives as iterables of labelled light curves, opened by "FORMAT:PATH" (see base.FORMATS)."""

from broker.offline.archives.base import FORMATS, Archive, BadRow, ReadReport, open_archive

__all__ = ["FORMATS", "Archive", "BadRow", "ReadReport", "open_archive"]
