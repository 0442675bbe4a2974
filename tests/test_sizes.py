"""Sizes as people write them: one parser for options, settings files and the explorer's filter."""

import pytest

from slimmer.errors import ConfigError
from slimmer.sizes import parse_size


@pytest.mark.parametrize("text, size", [
    ("1000", 1000),
    ("500MB", 500_000_000),
    ("500mb", 500_000_000),
    ("2GiB", 2 * 2**30),
    ("1.5k", 1500),
    (" 10 kB ", 10_000),
    ("64GiB", 64 * 2**30),
    ("0", 0),
    (42, 42),
], ids=["a bare number is bytes", "decimal megabytes", "any case", "binary gibibytes", "a fraction with a unit",
        "spaces around and before the unit", "the default layer limit", "zero", "an int from a settings file"])
def test_a_size_names_its_bytes(text, size):
    """Decimal units as docker prints them, binary ones with an i, ints as they are."""
    assert parse_size(text) == size


@pytest.mark.parametrize("value", ["big", "", "-5", "5XB", "1e3", "9" * 400, True, -1],
                         ids=["a word", "nothing", "a negative number", "an unknown unit", "an exponent",
                              "a number too large for a float", "a boolean", "a negative int"])
def test_what_is_not_a_size_is_a_config_error_naming_where(value):
    """A value naming no size raises ConfigError whose message starts with where it was found."""
    with pytest.raises(ConfigError, match=r"^--max-size: "):
        parse_size(value, "--max-size")


def test_every_caller_reads_sizes_through_the_one_parser():
    """The command line, the settings file and the explorer's filter use ``slimmer.sizes``."""
    from slimmer import config_file
    from slimmer.cli import check, options
    from slimmer.explorer import filters

    for module in (config_file, check, options, filters):
        assert module.parse_size is parse_size, module.__name__
