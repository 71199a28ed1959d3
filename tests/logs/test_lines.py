"""Splitting bytes into lines, decoding them, and the position records (pure code)."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.sensors.logs.lines import LineSplitter, decode
from stockade.sensors.logs.position import HEAD_SIZE, Identity, Position, digest


def test_partial_line_is_kept_until_its_newline() -> None:
    sp = LineSplitter()
    assert sp.feed(b"first\nsec") == [b"first"]
    assert sp.line_end == 6
    assert sp.partial
    assert sp.feed(b"ond half") == []
    assert sp.line_end == 6  # a restart from here reads "second half" whole
    assert sp.feed(b"\n") == [b"second half"]
    assert sp.line_end == sp.offset == 18
    assert not sp.partial


def test_empty_lines_and_offsets() -> None:
    sp = LineSplitter(offset=100)
    assert sp.feed(b"\n\na\n") == [b"", b"", b"a"]
    assert sp.line_end == sp.offset == 104


def test_flush_returns_the_unfinished_line() -> None:
    sp = LineSplitter()
    sp.feed(b"done\nnot done")
    assert sp.flush() == b"not done"
    assert sp.line_end == sp.offset == 13
    assert sp.flush() is None


def test_reset_forgets_the_partial_line() -> None:
    sp = LineSplitter()
    sp.feed(b"abc\ndef")
    sp.reset(0)
    assert (sp.offset, sp.line_end, sp.partial) == (0, 0, False)
    assert sp.feed(b"xyz\n") == [b"xyz"]


def test_long_line_is_cut_and_the_rest_skipped() -> None:
    sp = LineSplitter(max_line=10)
    assert sp.feed(b"0123456789ABCDEF") == []
    assert sp.feed(b"GHIJ" * 100) == []
    assert sp.feed(b"KLM\nnext\n") == [b"0123456789", b"next"]
    assert sp.line_end == sp.offset == 16 + 400 + 9
    # a long line inside a single chunk, and one of exactly max_line bytes
    assert sp.feed(b"x" * 25 + b"\n" + b"y" * 10 + b"\n") == [b"x" * 10, b"y" * 10]


def test_ten_megabyte_line_does_not_use_ten_megabytes() -> None:
    sp = LineSplitter(max_line=65536)
    chunk = b"z" * 65536
    tracemalloc.start()
    try:
        for _ in range(160):  # 10 MiB without a newline
            assert sp.feed(chunk) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert sp.feed(b"end\nafter\n") == [b"z" * 65536, b"after"]


@given(
    st.lists(st.binary(max_size=40), max_size=30),
    st.lists(st.integers(min_value=1, max_value=17), min_size=1, max_size=10),
    st.integers(min_value=1, max_value=30),
)
def test_chunking_does_not_change_the_lines(
    lines: list[bytes], cuts: list[int], max_line: int
) -> None:
    stream = b"".join(line.replace(b"\n", b"") + b"\n" for line in lines)
    expected = [line.replace(b"\n", b"")[:max_line] for line in lines]
    sp = LineSplitter(max_line=max_line)
    got: list[bytes] = []
    i = 0
    k = 0
    while i < len(stream):
        n = cuts[k % len(cuts)]
        got += sp.feed(stream[i : i + n])
        i += n
        k += 1
    assert got == expected
    assert sp.line_end == len(stream)


def test_decode_keeps_binary_and_replaces_invalid_utf8() -> None:
    assert decode(b"caf\xc3\xa9") == "café"
    assert decode(b"a\xffb") == "a\ufffdb"
    assert decode(b"nul\x00esc\x1b[31m") == "nul\x00esc\x1b[31m"
    assert decode(b"crlf\r") == "crlf"
    assert decode(b"\xc3") == "\ufffd"  # a multibyte character cut by max_line


def test_identity_head_and_growth() -> None:
    ident = Identity.of(1, 2, b"short")
    assert ident.head_len == 5
    assert ident.head_matches(b"short and longer now")
    assert not ident.head_matches(b"shor")
    assert not ident.head_matches(b"other")
    assert ident.matches(1, 2, b"short...")
    assert not ident.matches(1, 3, b"short...")
    grown = ident.grown(b"short" + b"x" * 1000)
    assert grown.head_len == HEAD_SIZE
    assert grown.head == digest(b"short" + b"x" * (HEAD_SIZE - 5))
    assert grown.grown(b"anything else") is grown
    assert Identity.of(1, 2, b"").head_matches(b"whatever")


def test_position_json_round_trip() -> None:
    pos = Position(Identity.of(2049, 1234567, b"first line\n"), 4096)
    text = pos.to_json()
    assert json.loads(text)["offset"] == 4096
    assert Position.from_json(text) == pos
    done = Position(Identity.of(1, 2, b"x"), 10, complete=True)
    assert Position.from_json(done.to_json()) == done
    assert Position.from_json(done.to_json()).complete


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nope",
        "[]",
        '{"v": 2}',
        '{"v":1,"dev":1,"ino":2,"head":"ab","head_len":1,"offset":0}',
        '{"v":1,"dev":-1,"ino":2,"head":"' + "a" * 64 + '","head_len":1,"offset":0}',
        '{"v":1,"dev":1,"ino":2,"head":"' + "a" * 64 + '","head_len":1,"offset":"0"}',
        '{"v":1,"dev":1,"ino":2,"head":"' + "a" * 64 + '","head_len":999,"offset":0}',
        '{"v":1,"dev":true,"ino":2,"head":"' + "a" * 64 + '","head_len":1,"offset":0}',
    ],
)
def test_position_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        Position.from_json(text)
