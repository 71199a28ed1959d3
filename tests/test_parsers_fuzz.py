"""Parsers are fed malformed and random input: they answer or raise their own error, no more."""

from __future__ import annotations

import contextlib
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.detectors.files.compare import compare_entry
from stockade.durations import parse_duration
from stockade.sensors.files.acl import acl_text
from stockade.sensors.files.attributes import ATTRIBUTES, parse_attribute_expression
from stockade.sensors.files.collect import Collected, encode
from stockade.sensors.files.dpkg import aliases, parse_md5sums, parse_status_conffiles
from stockade.sensors.files.workerproto import (
    ProtocolError,
    decode_request,
    decode_result,
    encode_request,
    encode_result,
)

paths = st.binary(min_size=1, max_size=200).map(lambda b: b"/" + b.replace(b"\0", b"_"))


@settings(max_examples=500)
@given(paths, st.integers(min_value=0, max_value=2**31))
def test_worker_request_round_trip(path: bytes, mask: int) -> None:
    assert decode_request(encode_request(path, mask)) == (path, mask)


@settings(max_examples=300)
@given(
    paths,
    st.one_of(st.none(), st.text()),
    st.one_of(st.none(), st.text(min_size=1)),
    st.integers(min_value=0),
)
def test_worker_result_round_trip(path: bytes, entry: str | None, note: str | None, n: int) -> None:
    entry_text = None if entry is None else encode({"type": "file", "x": entry})
    c = Collected(
        path,
        entry_text,
        (note and note.replace("\t", " ").replace("\n", " ").strip()) or None,
        None,
        n,
    )
    back = decode_result(encode_result(c))
    assert back.path == path and back.entry == entry_text and back.hashed == n


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_worker_lines_garbage(line: bytes) -> None:
    for decode in (decode_request, decode_result):
        with contextlib.suppress(ProtocolError):
            decode(line)


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_dpkg_parsers_never_fail(data: bytes) -> None:
    for path, md5 in parse_md5sums(data):
        assert path.startswith(b"/") and len(md5) == 32
    for _pkg, path, md5 in parse_status_conffiles(data):
        assert len(md5) == 32 and path


def test_dpkg_md5sums_and_status() -> None:
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    data = f"{md5}  usr/bin/x\nbad line\n{md5}  bin/with space\n".encode()
    assert list(parse_md5sums(data)) == [(b"/usr/bin/x", md5), (b"/bin/with space", md5)]
    status = (
        f"Package: a\nStatus: install ok installed\nConffiles:\n /etc/a.conf {md5}\n"
        f" /etc/old.conf {md5} obsolete\nDescription: x\n\nPackage: b\nConffiles:\n /etc/b {md5}\n"
    ).encode()
    assert list(parse_status_conffiles(status)) == [
        ("a", b"/etc/a.conf", md5),
        ("b", b"/etc/b", md5),
    ]
    assert aliases(b"/usr/bin/ls") == [b"/usr/bin/ls", b"/bin/ls"]
    assert aliases(b"/sbin/init") == [b"/sbin/init", b"/usr/sbin/init"]
    assert aliases(b"/etc/passwd") == [b"/etc/passwd"]


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_acl_decoder(raw: bytes) -> None:
    text = acl_text(raw)
    assert isinstance(text, str)


def test_acl_decoder_known_value() -> None:
    import struct

    raw = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, ident)
        for tag, perm, ident in [
            (1, 7, 0xFFFFFFFF),
            (2, 5, 1000),
            (4, 5, 0xFFFFFFFF),
            (0x10, 7, 0xFFFFFFFF),
            (0x20, 4, 0xFFFFFFFF),
        ]
    )
    assert acl_text(raw) == "u::rwx,u:1000:r-x,g::r-x,m::rwx,o::r--"
    assert acl_text(b"\x01\x00\x00\x00").startswith("invalid:")


@settings(max_examples=500)
@given(st.text(max_size=60))
def test_attribute_expressions(expr: str) -> None:
    try:
        attrs = parse_attribute_expression(expr)
    except ValueError as e:
        assert str(e)
    else:
        assert attrs <= set(ATTRIBUTES) and "type" in attrs


def test_attribute_expression_arithmetic() -> None:
    assert parse_attribute_expression("binaries-inode+sha512") == (
        parse_attribute_expression("binaries") - {"inode"} | {"sha512"}
    )
    with pytest.raises(ValueError, match="operator without a name"):
        parse_attribute_expression("binaries++sha512")


@settings(max_examples=500)
@given(st.text(max_size=20))
def test_durations(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert parse_duration(text) >= 0


def test_duration_values() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2d") == 172800
    assert parse_duration(5) == 5
    for bad in ("", "h", "1x", "-1s", "1h 2"):
        with pytest.raises(ValueError):
            parse_duration(bad)


entries = st.fixed_dictionaries(
    {"type": st.sampled_from(["file", "dir", "symlink"])},
    optional={
        "perms": st.sampled_from(["0755", "4755", "0644"]),
        "size": st.integers(0, 99),
        "sha256": st.sampled_from(["a" * 64, "b" * 64]),
        "link": st.text(max_size=4),
    },
)


@settings(max_examples=500)
@given(entries, entries)
def test_compare_is_consistent(old: dict, new: dict) -> None:
    attrs = frozenset(ATTRIBUTES)
    d = compare_entry(b"/p", encode(old), encode(new), attrs)
    if old == new:
        assert d is None
    if d is not None:
        for a in d.attributes:
            assert old.get(a.name) == a.old and new.get(a.name) == a.new
            assert a.old != a.new
    assert compare_entry(b"/p", None, encode(new), attrs).change == "added"  # type: ignore[union-attr]
    assert compare_entry(b"/p", encode(old), None, attrs).change == "removed"  # type: ignore[union-attr]


def test_json_paths_are_lossless() -> None:
    raw = b"/tmp/\xff\xfe name"
    text = json.dumps(os.fsdecode(raw))
    assert os.fsencode(json.loads(text)) == raw


@settings(max_examples=300)
@given(st.sets(paths, max_size=20), st.floats(allow_nan=False, allow_infinity=False), st.text())
def test_changed_paths_round_trip_and_junk(found: set[bytes], when: float, junk: str) -> None:
    """The daemon's list of changed paths for the files page: what it wrote reads back the
    same (any bytes in paths); anything else reads as nothing."""
    from stockade.parts.files.changed import changed_paths_json, read_changed

    got = read_changed(changed_paths_json(found, when, None))
    assert got is not None and got.paths == sorted(found) and got.updated == when
    parsed = read_changed(junk)
    assert parsed is None or isinstance(parsed.paths, list | None)
    for bad in ("", "[]", '{"updated": "x", "paths": []}', '{"paths": 3, "updated": 1}', "{"):
        assert read_changed(bad) is None
