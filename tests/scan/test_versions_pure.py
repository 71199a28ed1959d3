"""The probe database parser, the Perl pattern translation, matching and version fields, on
excerpts of nmap-service-probes and malformed or random input (no I/O but the installed file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.errors import StockadeError
from stockade.sensors.scan.perl_re import Untranslatable, translate
from stockade.sensors.scan.probes_db import ProbeFileError, parse_probes
from stockade.sensors.scan.versions import PROBES_FILE, Matcher, read_probes, substitute

EXCERPT = r"""
# a comment
Exclude T:9100-9101,U:30000-30001,9102
Probe TCP NULL q||
totalwaitms 6000
tcpwrappedms 3000
match ssh m|^SSH-([\d.]+)-OpenSSH_([\w._-]+)[ -]{1,2}Debian[ -_]([^\r\n]+)\r?\n| p/OpenSSH/ v/$2 Debian $3/ i/protocol $1/ o/Linux/ cpe:/a:openbsd:openssh:$2/ cpe:/o:debian:debian_linux/ cpe:/o:linux:linux_kernel/a
match ftp m/^220 \(vsFTPd ([-.\w]+)\)\r\n/ p/vsftpd/ v/$1/ o/Unix/ cpe:/a:vsftpd:vsftpd:$1/
softmatch ftp m/^220[- ].*ftp/i
match weird m=^W(\d\d)\z= p|Weird| v|$I(1,">")| h/$P(1)/
Probe TCP GenericLines q|\r\n\r\n|
rarity 1
ports 21,23,35,43,1000-1002
sslports 990
match echo m|^\r\n\r\n$|
Probe TCP GetRequest q|GET / HTTP/1.0\r\n\r\n|
rarity 1
ports 80,8000-8002,9100
sslports 443
match http m|^HTTP/1\.[01] \d\d\d .*\r\nServer: nginx/([\d.]+)\r\n|s p/nginx/ v/$1/ cpe:/a:igor_sysoev:nginx:$1/
Probe TCP HTTPOptions q|OPTIONS / HTTP/1.0\r\n\r\n|
rarity 4
ports 80,8000
fallback GetRequest
match rtsp m|^RTSP/1\.0 200 OK\r\n| p/Some RTSP/
Probe TCP LPDString q|\x01default\n|
rarity 5
ports 80,515,9100
Probe TCP Help q|HELP\r\n|
rarity 8
ports 80
Probe UDP DNSVersionBindReq q|\0\x06\x01\0|
rarity 1
ports 80
"""


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(parse_probes(EXCERPT))


def test_excerpt_parses_with_every_directive() -> None:
    db = parse_probes(EXCERPT)
    assert db.skipped == []
    assert [p.name for p in db.probes][:3] == ["NULL", "GenericLines", "GetRequest"]
    null, lines = db.probes[0], db.probe("GenericLines")
    assert null.payload == b"" and null.totalwaitms == 6000 and null.rarity == 5
    assert lines is not None and lines.payload == b"\r\n\r\n" and lines.rarity == 1
    assert lines.ports == frozenset({21, 23, 35, 43, 1000, 1001, 1002})
    assert lines.sslports == frozenset({990})
    ssh = null.matches[0]
    assert ssh.service == "ssh" and not ssh.soft and ssh.flags == ""
    assert ssh.fields == {"p": "OpenSSH", "v": "$2 Debian $3", "i": "protocol $1", "o": "Linux"}
    assert ssh.cpe == ["a:openbsd:openssh:$2", "o:debian:debian_linux", "o:linux:linux_kernel"]
    assert null.matches[2].soft and null.matches[2].flags == "i"
    assert db.probe("HTTPOptions").fallback == ["GetRequest"]  # type: ignore[union-attr]
    assert db.probe("LPDString").payload == b"\x01default\n"  # type: ignore[union-attr]
    assert db.probe("DNSVersionBindReq", "UDP") is not None


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("match ssh m|^SSH", "no closing '|'"),
        ("match ssh x|^SSH|", "expected SERVICE m<d>REGEX<d>"),
        ("match ssh m|^SSH|q", "unknown regex flag"),
        ("match ssh m|^SSH| z/what/", "unknown version field"),
        ("match ssh m|^SSH| p/OpenSSH", "no closing '/'"),
        ("match ssh m|^SSH| p/a/junk", "junk after a version field"),
        ("ports 22,abc", "bad port list item"),
        ("ports 70000", "bad port range"),
        ("rarity high", "needs a whole number"),
        ("rarity 12", "rarity must be 1 to 9"),
        ("Probe SCTP x q||", "expected Probe TCP|UDP"),
        ("Probe TCP x q|\\xZZ|", "two hex digits"),
        ("Probe TCP x q|a| extra", "junk after the probe string"),
        ("frobnicate 3", "unknown directive"),
    ],
)
def test_malformed_lines_are_skipped_and_counted(line: str, why: str) -> None:
    db = parse_probes(f"Probe TCP NULL q||\n{line}\nmatch ok m/^ok/\n")
    assert len(db.skipped) == 1
    number, text = db.skipped[0]
    assert number == 2 and why in text
    assert db.probes[0].matches[-1].service == "ok"  # later lines still count


def test_a_file_without_probes_is_unusable_naming_the_line() -> None:
    with pytest.raises(ProbeFileError) as e:
        parse_probes("# nothing\nmatch ssh m/^SSH/\n")
    assert e.value.line == 2 and "before any Probe" in str(e.value)
    with pytest.raises(ProbeFileError, match="line 1: no usable Probe"):
        parse_probes("")


def test_an_unusable_file_is_one_line_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "nmap-service-probes"
    bad.write_text("<html>not this</html>\n")
    with pytest.raises(StockadeError, match=rf"^{bad}:1: not an nmap-service-probes file"):
        read_probes(bad)
    with pytest.raises(StockadeError, match="cannot read nmap's service probes"):
        read_probes(tmp_path / "missing")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=120))
def test_fuzzed_lines_parse_or_are_skipped_and_counted(text: str) -> None:
    prefixes = ("", "match ", "softmatch x ", "Probe TCP ", "ports ", "match s m|a| ")
    lines = "\n".join(p + text.replace("\n", " ").replace("\r", " ") for p in prefixes)
    db = parse_probes("Probe TCP NULL q||\n" + lines)
    kept = sum(len(p.matches) for p in db.probes) + len(db.probes)
    assert len(db.skipped) + kept <= len(prefixes) + 1 + len(db.probes)
    assert all(1 < n <= len(prefixes) + 1 for n, _ in db.skipped)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("\\[]():?<>=!^$.*+{}|azZhHeQEx0123,:-pPdw ")), max_size=30
    )
)
def test_fuzzed_patterns_compile_or_are_counted(pattern: str) -> None:
    db = parse_probes(f"Probe TCP NULL q||\nmatch x m\x00{pattern}\x00s\n")
    if db.skipped:  # the pattern held the delimiter
        return
    m = Matcher(db)
    compiled = m.patterns(db.probes[0])
    assert len(compiled) + len(m.untranslatable) == 1
    assert m.identify(b"some answer") is None or compiled


@pytest.mark.parametrize(
    ("perl", "subject", "hit"),
    [
        (r"^a\z", b"a", True),
        (r"^a\z", b"a\n", False),
        (r"^a\Z", b"a\n", True),
        (r"^a\h+b", b"a \tb", True),
        (r"^[[:alpha:]_]+$", b"Ab_c", True),
        (r"^[[:digit:]]+$", b"12a", False),
        (r"^(?<word>\w+) x$", b"ab x", True),
        (r"^\x{41}\e", b"A\x1b", True),
        (r"^\Qa.b\E$", b"a.b", True),
        (r"^\Qa.b\E$", b"axb", False),
        (r"^[]a]+$", b"]a]", True),
        (r"^x\iy", b"xiy", True),
    ],
)
def test_perl_constructs_translate(perl: str, subject: bytes, hit: bool) -> None:
    text = translate(perl)
    assert bool(re.search(text.encode("latin-1"), subject)) is hit


@pytest.mark.parametrize("perl", [r"\p{L}", r"a\Kb", r"\G", r"a(?i)b", r"(?<n>a)\k<n>", "tail\\"])
def test_untranslatable_constructs_are_refused(perl: str) -> None:
    with pytest.raises(Untranslatable):
        translate(perl)


def test_substitutions() -> None:
    groups = (b"2.0", b"\x00\x01", None, b"a_b_c", b"x\x07y")
    assert substitute("v$1 ($3)", groups) == "v2.0 ()"
    assert substitute('$I(2,">")/$I(2,"<")', groups) == "1/256"
    assert substitute('$SUBST(4,"_",".")', groups) == "a.b.c"
    assert substitute("$P(5)", groups) == "xy"
    assert substitute("$5", groups) == "x\\x07y"
    assert substitute("$9", groups) == ""


def test_identify_hard_soft_and_fallback(matcher: Matcher) -> None:
    ssh = matcher.identify(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    assert ssh is not None and not ssh.soft
    assert (ssh.name, ssh.product, ssh.version, ssh.extrainfo, ssh.ostype) == (
        "ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3", "protocol 2.0", "Linux",
    )  # fmt: skip
    assert ssh.cpe == ["cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"]
    assert ssh.describe() == "ssh OpenSSH 9.2p1 Debian 2+deb12u3 (protocol 2.0)"
    soft = matcher.identify(b"220 Welcome to some FTP server\r\n")
    assert soft is not None and soft.soft and soft.name == "ftp" and soft.product == ""
    # HTTPOptions falls back on GetRequest's matches (and then NULL's)
    nginx = matcher.identify(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\r\n", "HTTPOptions")
    assert nginx is not None and (nginx.product, nginx.version) == ("nginx", "1.22.1")
    via_null = matcher.identify(b"220 (vsFTPd 3.0.3)\r\n", "GetRequest")
    assert via_null is not None and via_null.product == "vsftpd"
    weird = matcher.identify(b"W\x01\x02")
    assert weird is None  # \d\d does not match bytes 1 and 2
    assert matcher.identify(b"W42") is not None
    assert matcher.identify(b"") is None and matcher.identify(b"nothing known") is None
    assert matcher.untranslatable == []


def test_next_probes_by_port_rarity_and_harm(matcher: Matcher) -> None:
    # LPDString is not harmless, Help too rare, the UDP probe not TCP
    assert [p.name for p in matcher.next_probes(80)] == ["GetRequest", "HTTPOptions"]
    assert [p.name for p in matcher.next_probes(80, limit=1)] == ["GetRequest"]
    assert [p.name for p in matcher.next_probes(443, tls=True)] == ["GetRequest"]
    assert [p.name for p in matcher.next_probes(80, done=frozenset({"GetRequest"}))] == [
        "HTTPOptions"
    ]
    assert matcher.next_probes(12345) == []
    assert matcher.db.exclude_tcp == frozenset({9100, 9101, 9102})
    assert matcher.next_probes(9100) == []  # a printer prints what it gets
    assert [p.name for p in matcher.next_probes(21, soft="echo")] == ["GenericLines"]
    assert matcher.next_probes(21, soft="ftp") == []  # no probe has hard ftp matches here


@pytest.mark.skipif(not PROBES_FILE.exists(), reason="nmap is not installed")
def test_the_installed_database_parses_and_compiles() -> None:
    db = read_probes(PROBES_FILE)
    assert db.skipped == []
    m = Matcher(db)
    assert m.compile_all() + len(m.untranslatable) == sum(
        len(p.matches) for p in db.probes if p.proto == "TCP"
    )
    assert len(m.untranslatable) <= 5


def test_an_answer_made_to_backtrack_is_no_match_not_a_stall() -> None:
    """A hostile service answers so that a pattern backtracks without end (as Python's re would
    on this one for longer than the test run): the search stops at the budget, counted."""
    from stockade.sensors.scan import versions

    db = parse_probes("Probe TCP NULL q||\nmatch evil m=^(a|aa)+$= p/Evil/\n")
    m = Matcher(db)
    assert m.identify(b"aaaa") is not None  # an ordinary answer matches
    hostile = b"a" * 60 + b"!"
    assert m.identify(hostile) is None
    assert m.slow == 1
    assert versions.MATCH_BUDGET < 1
