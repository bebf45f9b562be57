"""One FORMAT:PATH parser and one set of reader flags for every command that reads archives."""

from __future__ import annotations

import argparse
import importlib

import pytest

from broker.cli import COMMANDS
from broker.errors import ArchiveError, ConfigError
from broker.offline.archives.base import FORMATS, parse_spec
from broker.offline.archives.options import READER_FLAGS, open_archives, reader_options

# command -> the arguments it requires besides the reader flags
ARCHIVE_COMMANDS = {
    "replay": ["csv:x", "--out", "o"],
    "evaluate": ["--data", "csv:x", "--out", "o"],
    "demo": [],
    "periods": ["--data", "csv:x", "--out", "o"],
    "train": ["--data", "csv:x", "--out", "o"],
}


def subparser(name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=name)
    module.add_arguments(parser)
    return parser


@pytest.mark.parametrize("command", ARCHIVE_COMMANDS)
def test_every_archive_command_takes_the_same_reader_flags(command):
    flags = [arg for name in READER_FLAGS for arg in ("--" + name.replace("_", "-"), "1")]
    args = subparser(command).parse_args([*ARCHIVE_COMMANDS[command], *flags, "--skip-bad-rows"])
    assert reader_options(args) == {**dict.fromkeys(READER_FLAGS, "1"), "time_offset_days": 1.0,
                                    "on_error": "collect"}  # fmt: skip


def test_flags_become_reader_options():
    args = subparser("evaluate").parse_args(
        ["--data", "csv:x", "--out", "o", "--time-col", "t", "--band-col", "b", "--skip-bad-rows",
         "--time-offset-days", "2.5"]
    )  # fmt: skip
    assert reader_options(args) == {
        "time_col": "t",
        "band_col": "b",
        "time_offset_days": 2.5,
        "on_error": "collect",
    }


def test_the_one_parser(tmp_path):
    assert parse_spec(f"ogle:{tmp_path}") == ("ogle", tmp_path)
    with pytest.raises(ConfigError, match=r"unknown archive format 'macho'.*" + str(sorted(FORMATS))[1:-1]):
        parse_spec(f"macho:{tmp_path}")
    with pytest.raises(ConfigError, match="must be FORMAT:PATH"):
        parse_spec("crts")
    with pytest.raises(ArchiveError, match="does not exist"):
        parse_spec(f"crts:{tmp_path / 'nowhere'}")


def test_options_that_no_format_takes_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\['bands'\] apply to none"):
        open_archives([f"crts:{tmp_path}", f"eros:{tmp_path}"], {"bands": "I"})
    (archive,) = open_archives([f"ogle:{tmp_path}"], {"bands": "I,V", "on_error": "collect"})
    assert archive.bands == ("I", "V")
