"""edgebrain.options: typed option values, and ``merge_spec``, which lets ``--encoder`` set some of
a model's encoder options and keep the others."""

from __future__ import annotations

import pytest

from edgebrain.errors import InputError
from edgebrain.options import merge_spec, options_only, parse_options
from edgebrain.stream.base import parse_spec

STORED = "bin:window_us=20000,polarity=split"  # zoo:nmnist's own encoder spec


def test_options_alone_are_merged_into_the_stored_spec_keeping_the_rest():
    out = merge_spec(STORED, "crop=143|103|34|34")
    assert out == "bin:window_us=20000,polarity=split,crop=143|103|34|34"
    assert parse_spec(out) == ("bin", {"window_us": 20000, "polarity": "split", "crop": [143, 103, 34, 34]})


def test_a_given_option_replaces_the_stored_value_in_place():
    out = merge_spec(STORED, "polarity=merge, downsample=2")
    assert out == "bin:window_us=20000,polarity=merge,downsample=2"


def test_a_named_spec_replaces_the_stored_one_whole():
    assert merge_spec(STORED, "bin:count=500") == "bin:count=500"
    assert merge_spec(STORED, "delta") == "delta"
    assert merge_spec(STORED, {"type": "bin", "count": 5}) == {"type": "bin", "count": 5}  # Python dict specs


@pytest.mark.parametrize("given", [None, "", "  "])
def test_nothing_given_keeps_the_stored_spec(given):
    assert merge_spec(STORED, given) == STORED
    assert merge_spec(None, given) is None


def test_options_merge_into_a_stored_spec_without_options():
    assert merge_spec("bin", "crop=1|2|3|4") == "bin:crop=1|2|3|4"


def test_options_alone_without_a_stored_spec_is_a_clear_error():
    with pytest.raises(InputError, match="there is none; give the encoder's name too, e.g. 'bin:crop=1"):
        merge_spec(None, "crop=1|2|3|4")


def test_a_part_that_is_not_key_value_is_an_error_naming_it():
    with pytest.raises(InputError, match="'downsample' is not key=value"):
        merge_spec(STORED, "crop=1|2|3|4,downsample")


@pytest.mark.parametrize("spec, alone", [("crop=1|2|3|4", True), ("a=1,b=2", True), ("bin", False),
                                         ("bin:crop=1|2|3|4", False), ("file:path=c:/x=y", False),
                                         ("path=c:/x", True), ("", False)])
def test_options_only(spec, alone):
    assert options_only(spec) is alone


def test_parse_options_types_values():
    assert parse_options(["rate=100", "valid=-1|1.5", "realtime=yes", "name=x"]) == {
        "rate": 100, "valid": [-1, 1.5], "realtime": True, "name": "x"}
    with pytest.raises(InputError, match="expected key=value"):
        parse_options(["rate"])
