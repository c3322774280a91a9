"""Backend options read by kind: good values, bad ones in one line naming the key, bounds."""

from __future__ import annotations

import pytest

from lfs_agent.errors import ConfigError
from lfs_agent.options import GIB, KIB, MIB, Options, parse_size, show_size


def opts(**values: str) -> Options:
    """Options of the ``http`` scope, set as ``name=value`` (``_`` for ``-``)."""
    return Options({f"http.{k.replace('_', '-')}": v for k, v in values.items()}, "http")


def refused(options: Options, read, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read(options)
    assert str(caught.value) == message


def test_only_the_scope_is_read_and_unset_means_the_default():
    options = Options({"http.timeout": "5", "s3.timeout": "bad", "httpx.timeout": "bad"}, "http")
    assert options.seconds("timeout", 60.0, minimum=1, maximum=3600) == 5.0
    assert Options(None, "s3").whole("concurrency", 4, minimum=1, maximum=64) == 4
    assert options.key("max-attempts") == "lfs-agent.http.max-attempts"


def test_text():
    assert opts(header="X: y").text("header") == "X: y"
    assert opts().text("header") is None
    assert opts(region="").text("region", "us-east-1") == "us-east-1"  # empty: not set


def test_choice():
    read = lambda o: o.choice("checksum", "sha256", ("sha256", "off"))  # noqa: E731
    assert read(opts()) == "sha256"
    assert read(opts(checksum="OFF")) == "off"
    assert read(opts(checksum=" sha256 ")) == "sha256"
    refused(
        opts(checksum="md5"),
        read,
        "lfs-agent.http.checksum must be sha256 or off, got 'md5'",
    )
    three = opts(style="x")
    refused(
        three,
        lambda o: o.choice("style", None, ("path", "virtual", "auto")),
        "lfs-agent.http.style must be path, virtual or auto, got 'x'",
    )


@pytest.mark.parametrize(("text", "number"), [("1", 1), ("5", 5), (" 100 ", 100)])
def test_whole_numbers(text, number):
    assert opts(max_attempts=text).whole("max-attempts", 5, minimum=1, maximum=100) == number


# "\uff15" is a fullwidth five, which int() alone would take.
@pytest.mark.parametrize("text", ["five", "2.5", "0", "101", "-1", "", "+3", "1e2", "\uff15"])
def test_whole_numbers_refused(text):
    refused(
        opts(max_attempts=text),
        lambda o: o.whole("max-attempts", 5, minimum=1, maximum=100),
        f"lfs-agent.http.max-attempts must be a whole number from 1 to 100, got {text!r}",
    )


@pytest.mark.parametrize(("text", "seconds"), [("1", 1.0), ("2.5", 2.5), ("3600", 3600.0)])
def test_seconds(text, seconds):
    assert opts(timeout=text).seconds("timeout", 60.0, minimum=1, maximum=3600) == seconds


@pytest.mark.parametrize("text", ["soon", "0.5", "3601", "-1", "nan", "inf", "", "60s"])
def test_seconds_refused(text):
    refused(
        opts(timeout=text),
        lambda o: o.seconds("timeout", 60.0, minimum=1, maximum=3600),
        f"lfs-agent.http.timeout must be a number of seconds from 1 to 3600, got {text!r}",
    )


def test_seconds_bounds_shown_as_given():
    refused(
        opts(wait="9"),
        lambda o: o.seconds("wait", 1.0, minimum=0.5, maximum=2.5),
        "lfs-agent.http.wait must be a number of seconds from 0.5 to 2.5, got '9'",
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8388608", 8 * MIB),
        ("8M", 8 * MIB),
        ("8MiB", 8 * MIB),
        ("8mb", 8 * MIB),
        ("1G", GIB),
        ("64k", 64 * KIB),
        (" 5MiB ", 5 * MIB),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size
    assert opts(part_size=text).size("part-size", MIB, minimum=0, maximum=GIB) == size


@pytest.mark.parametrize("text", ["lots", "1.5G", "-5M", "8T", "", "M"])
def test_sizes_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)
    refused(
        opts(part_size=text),
        lambda o: o.size("part-size", 32 * MIB, minimum=5 * MIB, maximum=5 * GIB),
        "lfs-agent.http.part-size must be a size from 5MiB to 5GiB "
        f"(bytes, or with a K/M/G suffix), got {text!r}",
    )


def test_size_bounds_and_multiples():
    read = lambda o: o.size("part-size", 32 * MIB, minimum=5 * MIB, maximum=5 * GIB)  # noqa: E731
    assert read(opts(part_size="5M")) == 5 * MIB
    assert read(opts(part_size="5G")) == 5 * GIB
    for text in ("1M", "5242879", "6G"):
        with pytest.raises(ConfigError, match="must be a size from 5MiB to 5GiB"):
            read(opts(part_size=text))
    chunk = lambda o: o.size(  # noqa: E731
        "chunk-size", MIB, minimum=256 * KIB, maximum=GIB, multiple_of=256 * KIB
    )
    assert chunk(opts(chunk_size="768K")) == 768 * KIB
    refused(
        opts(chunk_size="100000"),
        chunk,
        "lfs-agent.http.chunk-size must be a multiple of 256KiB from 256KiB to 1GiB "
        "(bytes, or with a K/M/G suffix), got '100000'",
    )


def test_sizes_are_shown_in_their_largest_unit():
    assert [show_size(n) for n in (0, 300, 2048, 5 * MIB, 3 * GIB, MIB + 1)] == [
        "0",
        "300",
        "2KiB",
        "5MiB",
        "3GiB",
        "1048577",
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("On", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
        ("", False),  # as git reads an empty value
        (" false ", False),
    ],
)
def test_flags(text, value):
    assert opts(git_credentials=text).flag("git-credentials", not value) is value


def test_flags_default_when_unset():
    assert opts().flag("git-credentials", True) is True
    assert opts().flag("git-credentials", False) is False


@pytest.mark.parametrize("text", ["maybe", "2", "truee", "nope"])
def test_flags_refused(text):
    refused(
        opts(git_credentials=text),
        lambda o: o.flag("git-credentials", True),
        "lfs-agent.http.git-credentials must be true or false (or yes/no, on/off, 1/0), "
        f"got {text!r}",
    )
