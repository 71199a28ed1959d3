"""Reading fail2ban's configuration folder: INI syntax, includes, interpolation, filters, jails.

Small hand-written trees check each feature, and the same trees plus the real /etc/fail2ban are
read by fail2ban's own readers (imported from the Debian package, when installed) to check
that both give exactly the same filters and jails.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from stockade.detectors.logs.f2b.filterconf import (
    F2bConfigError,
    FilterDef,
    load_filter,
    parse_filter_spec,
    parse_journalmatch,
)
from stockade.detectors.logs.f2b.ini import config_files, parse_ini, read_config
from stockade.detectors.logs.f2b.jailconf import JailDef, load_jail_filter, load_jails

F2B_PACKAGE = Path("/usr/lib/python3/dist-packages/fail2ban")
F2B_SAMPLES = F2B_PACKAGE / "tests" / "files" / "logs"
ETC = Path("/etc/fail2ban")


def write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def one_line(exc: pytest.ExceptionInfo[F2bConfigError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# fail2ban's own readers, for comparison


@pytest.fixture(scope="module")
def f2b() -> Any:
    """fail2ban's client package (the Debian one), or skip."""
    if not F2B_PACKAGE.is_dir():
        pytest.skip("fail2ban is not installed (apt-get install fail2ban)")
    if str(F2B_PACKAGE.parent) not in sys.path:
        sys.path.append(str(F2B_PACKAGE.parent))
    logging.getLogger("fail2ban").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fail2ban imports sre_constants
        import fail2ban.client.filterreader  # type: ignore[import-not-found]
        import fail2ban.client.jailsreader  # type: ignore[import-not-found]
        import fail2ban.helpers  # type: ignore[import-not-found]
        import fail2ban.server.mytime  # type: ignore[import-not-found]

    return fail2ban


def from_stream(stream: list[list[Any]]) -> dict[str, Any]:
    """The filter settings fail2ban's client would send to its server."""
    out: dict[str, Any] = {
        "prefregex": None,
        "failregex": [],
        "ignoreregex": [],
        "maxlines": 1,
        "datepattern": None,
        "journalmatch": [],
    }
    for token in stream:
        if token[0] not in ("set", "multi-set"):
            continue
        kind, _, opt, *rest = token
        values = rest[0] if kind == "multi-set" else rest if opt == "addjournalmatch" else rest[:1]
        if opt == "prefregex":
            out["prefregex"] = values[0] or None  # the server drops an empty prefregex
        elif opt in ("addfailregex", "addignoreregex"):
            out[opt[3:]] += values
        elif opt == "maxlines":
            out["maxlines"] = values[0]
        elif opt == "datepattern":
            out["datepattern"] = values[0] if values[0].strip() else None
        elif opt == "addjournalmatch":
            groups: list[list[str]] = [[]]
            for word in values:  # as the server's addJournalMatch groups them
                groups.append([]) if word == "+" else groups[-1].append(word)
            out["journalmatch"] += [tuple(group) for group in groups if group]
    return out


def from_filterdef(fd: FilterDef | None) -> dict[str, Any]:
    if fd is None:
        return from_stream([])
    return {
        "prefregex": fd.prefregex,
        "failregex": list(fd.failregex),
        "ignoreregex": list(fd.ignoreregex),
        "maxlines": fd.maxlines,
        "datepattern": fd.datepattern,
        "journalmatch": list(fd.journalmatch),
    }


def f2b_filter(f2b: Any, basedir: Path, name: str, opts: Mapping[str, str]) -> Any:
    reader = f2b.client.filterreader.FilterReader(
        name, "jail", dict(opts), basedir=str(basedir), share_config={}
    )
    assert reader.read(), name
    reader.getOptions({})
    return reader


def f2b_jails(f2b: Any, basedir: Path, *, force_enable: bool = True) -> tuple[Any, dict[str, Any]]:
    reader = f2b.client.jailsreader.JailsReader(
        basedir=str(basedir), force_enable=force_enable, share_config={}
    )
    assert reader.read()
    reader.getOptions()
    return reader, {jail.getName(): jail for jail in reader.jails}


def compare_jails(f2b: Any, basedir: Path) -> int:
    """Every jail as read by fail2ban and by stockade; returns how many were compared."""
    reader, theirs = f2b_jails(f2b, basedir)
    mine = {jail.name: jail for jail in load_jails(basedir)}
    assert list(theirs) == list(mine)
    str2seconds = f2b.server.mytime.MyTime.str2seconds
    for name, jail in theirs.items():
        opts = jail.options
        assert not opts.get("config-error"), opts.get("config-error")
        m = mine[name]
        logpath = [line.rsplit(" ", 1)[0] for line in (opts.get("logpath") or "").split("\n")]
        expected = {
            "filter": opts["filter"],
            "logpath": tuple(path for path in logpath if path),
            "backend": opts["backend"],
            "maxretry": opts["maxretry"],
            "findtime": float(str2seconds(opts["findtime"])),
            "bantime": float(str2seconds(opts["bantime"])),
            "port": reader._cfg.get(name, "port"),
            "maxmatches": opts.get("maxmatches"),
            "ignoreip": tuple(f2b.helpers.splitwords(opts.get("ignoreip"))),
            "usedns": opts.get("usedns", "warn"),
        }
        got = {key: getattr(m, key) for key in expected}
        assert got == expected, name
        stream = jail.convert(allow_no_files=True)
        assert from_filterdef(load_jail_filter(basedir, m)) == from_stream(stream), name
    return len(theirs)


# ---------------------------------------------------------------------------------------------
# INI syntax


def test_ini_values_comments_and_continuations() -> None:
    ini = parse_ini(
        "# a comment\n"
        "[Definition]\n"
        "; another\n"
        "Key = first\n"
        "      second ; inline comment after a blank\n"
        "    # a comment line inside the value is skipped\n"
        "\n"
        "      after a blank line\n"
        "hash = a#b # hashes are kept\n"
        "semi = a;b\n"
        "colon: x=y\n"
        "journalmatch = _SYSTEMD_UNIT=sshd.service\n"
        "empty =\n"
        "trailing = v\n"
        "\n"
        "\n"
        "[Other]\n"
        "  indented = is a key after a header\n",
        "f.conf",
    )
    d = ini.sections["Definition"]
    assert d["key"].text == "first\nsecond\n\nafter a blank line"
    assert d["key"].line == 4
    assert d["hash"].text == "a#b # hashes are kept"
    assert d["semi"].text == "a;b"
    assert d["colon"].text == "x=y"
    assert d["journalmatch"].text == "_SYSTEMD_UNIT=sshd.service"
    assert d["empty"].text == ""
    assert d["trailing"].text == "v"
    assert ini.sections["Other"]["indented"].text == "is a key after a header"


def test_ini_default_section_and_crlf() -> None:
    ini = parse_ini("[DEFAULT]\r\na = 1\r\n[DEFAULT]\r\nb = 2\r\n", "f.conf")
    assert {k: v.text for k, v in ini.defaults.items()} == {"a": "1", "b": "2"}
    assert ini.sections == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = 1\n", "f.conf:1: 'a = 1' comes before the first [section] header"),
        ("[s]\nnot an option\n", "f.conf:2: [s]: 'not an option' is not an option"),
        ("[s]\n= 1\n", "f.conf:2: [s]: '= 1' is not an option"),
        ("[s]\na = 1\nA = 2\n", "f.conf:3: [s] a: option given twice in this section"),
        ("[s]\n[t]\n[s]\n", "f.conf:3: section [s] appears twice in this file"),
    ],
)
def test_ini_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(F2bConfigError) as exc:
        parse_ini(text, "f.conf")
    assert one_line(exc).startswith(message)


# ---------------------------------------------------------------------------------------------
# files and includes


def test_file_order_includes_and_locals(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "x.conf": "[INCLUDES]\nbefore = b1.conf\n         sub/b2.conf\nafter = a1.conf\n"
            "[s]\nk = x.conf\n",
            "b1.conf": "[s]\nk = b1\n",
            "b1.local": "[s]\nk = b1.local\n",
            "sub/b2.conf": "[INCLUDES]\nbefore = b3.conf\n[s]\nk = b2\n",
            "sub/b3.conf": "[s]\nk = b3\n",
            "a1.conf": "[INCLUDES]\nafter = missing.local\n[s]\nk = a1\n",
            "x.d/20.conf": "[s]\nk = 20\n",
            "x.d/10.conf": "[s]\nk = 10\n",
            "x.d/10.local": "[s]\nk = 10.local\n",
            "x.d/.hidden.conf": "[s]\nk = hidden\n",
            "x.local": "[INCLUDES]\nbefore = l1.conf\n[s]\nk = x.local\n",
            "l1.conf": "[s]\nk = l1\n",
        },
    )
    files = config_files(str(tmp_path / "x"))
    config = read_config(files)
    names = [os.path.relpath(path, tmp_path) for path in config.files]
    assert names == [
        "b1.conf",
        "b1.local",
        "sub/b3.conf",
        "sub/b2.conf",
        "x.conf",
        "a1.conf",
        "x.d/10.conf",
        "x.d/20.conf",
        "l1.conf",
        "x.local",
        "x.d/10.local",
    ]
    assert config.sections["s"]["k"].text == "10.local"


def test_include_loops_end(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.conf": "[INCLUDES]\nbefore = b.conf\n[s]\nk = a\n",
            "b.conf": "[INCLUDES]\nbefore = a.conf\n[s]\nk = b\n",
        },
    )
    config = read_config([str(tmp_path / "a.conf")])
    assert [Path(p).name for p in config.files] == ["b.conf", "a.conf"]


def test_missing_include_is_an_error_unless_local(tmp_path: Path) -> None:
    write(tmp_path, {"a.conf": "[INCLUDES]\n\nbefore = there.local\n   nothere.conf\n[s]\n"})
    with pytest.raises(F2bConfigError) as exc:
        read_config([str(tmp_path / "a.conf")])
    assert one_line(exc) == (
        f"{tmp_path}/a.conf:3: [INCLUDES] before: included file {tmp_path}/nothere.conf "
        "does not exist"
    )


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "bad.conf").write_bytes(b"[s]\nk = \xff\n")
    with pytest.raises(F2bConfigError, match=r"bad\.conf: is not UTF-8 text \(byte 8\)"):
        read_config([str(tmp_path / "bad.conf")])


# ---------------------------------------------------------------------------------------------
# interpolation


def _jail_value(tmp_path: Path, files: Mapping[str, str], jail: str = "j") -> JailDef:
    write(tmp_path, files)
    return {j.name: j for j in load_jails(tmp_path)}[jail]


def test_interpolation(tmp_path: Path) -> None:
    jail = _jail_value(
        tmp_path,
        {
            "jail.conf": "[DEFAULT]\n"
            "base = /var/log\n"
            "log = %(base)s/%(__name__)s.log\n"
            "pct = 100%%\n"
            "[other]\n"
            "port = 8080\n"
            "[j]\n"
            "base = /srv/log\n"
            "a = %(log)s\n"
            "b = %(other/port)s %(default/base)s %(pct)s\n"
            "c = %(other/base)s\n"
            "port = ssh\n"
            "ignoreip = 1.2.3.4\n",
            "jail.d/a.conf": "[j]\nport = %(known/port)s,2222\n",
            "jail.local": "[j]\n"
            "port = %(known/port)s,3333\n"  # chained: known/ inside a known/ value goes back further
            "ignoreip = %(known/ignoreip)s 5.6.7.8\n"
            "maxretry = %(known/maxretry)s\n"
            "[DEFAULT]\nmaxretry = 7\n",
        },
    )
    assert jail.options["a"] == "/srv/log/j.log"
    assert jail.options["b"] == "8080 /var/log 100%"
    assert jail.options["c"] == "/var/log"  # a section without the key falls back to DEFAULT
    assert jail.port == "ssh,2222,3333"
    assert jail.ignoreip == ("1.2.3.4", "5.6.7.8")
    assert jail.maxretry == 7  # known/ of a key the section never had: [DEFAULT]'s


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("%(nothing)s", "'%(nothing)s' refers to an option that is not set"),
        ("50%", "'%' must be followed by '%' or '(name)s'"),
        ("%(x", "'%' must be followed by '%' or '(name)s'"),
        ("%(port)s", "references nest deeper than 10 levels"),
    ],
)
def test_interpolation_errors(tmp_path: Path, value: str, what: str) -> None:
    write(tmp_path, {"jail.conf": f"[j]\nenabled = true\nfilter =\n\nport = {value}\n"})
    with pytest.raises(F2bConfigError) as exc:
        load_jails(tmp_path)
    assert one_line(exc).startswith(f"{tmp_path}/jail.conf:5: [j] port: {what}")


# ---------------------------------------------------------------------------------------------
# filters

COMMON = {
    "filter.d/base-common.conf": r"""
[INCLUDES]
after = base-common.local

[DEFAULT]
_daemon = \S*
__prefix_line = ^\S+ %(_daemon)s(?:\[\d+\])?:\s+
logtype = file
__date = <lt_<logtype>/date>

[lt_file]
date = {^LN-BEG}

[lt_journal]
date = %(lt_file/date)s-journal
""",
    "filter.d/base-common.local": "[DEFAULT]\n_daemon = overridden-later\n",
}
DEMO = {
    **COMMON,
    "filter.d/demo.conf": r"""
# demo filter
[INCLUDES]
before = base-common.conf

[DEFAULT]
_daemon = demod

[Definition]
mode = normal
fam = plain
cmnfailre = %(__prefix_line)sauth failure for <F-USER>\S+</F-USER> from <HOST>$
            %(__prefix_line)sbad user from <ADDR>

            %(__prefix_line)s<F-NOFAIL>note</F-NOFAIL> from <HOST> <fam>
mdre-normal =
mdre-aggressive = %(__prefix_line)sprobe from <HOST>
    # a comment inside the value is skipped
                  %(__prefix_line)sscan from <HOST> ; the rest of the line is a comment
failregex = %(cmnfailre)s
            <mdre-<mode>>
            %(__prefix_line)s<extra> <known/extra> <init-only> from <HOST>
ignoreregex = %(__prefix_line)strusted <HOST>#not-a-comment
prefregex = ^<F-MLFID>%(__prefix_line)s</F-MLFID><F-CONTENT>.+</F-CONTENT>$
datepattern = %(__date)s
              ^%%Y-%%m-%%d %%H:%%M:%%S
journalmatch = _SYSTEMD_UNIT=demo.service + _COMM=demod
               "MESSAGE=a b" + _PID=1

[Init]
maxlines = 2
extra = init-extra
init-only = <mode>-mode

[Init?family=inet6]
fam = six
""",
    "filter.d/demo.local": r"""
[Definition]
failregex = %(known/failregex)s
            %(__prefix_line)slocal rule from <HOST>
""",
    "filter.d/demo.d/50-more.local": r"""
[Definition]
ignoreregex = %(known/ignoreregex)s
              ^another <HOST>
""",
}
DEMO_OPTIONS: list[dict[str, str]] = [
    {},
    {"mode": "aggressive"},
    {"mode": "unknown"},
    {"maxlines": "5"},
    {"extra": "arg-extra"},
    {"logtype": "journal"},
    {"__prefix_line": "PFX "},
    {"mode": "aggressive", "logtype": "journal", "extra": 'with, "comma"]'},
]


SPECS = [
    "sshd",
    "sshd[mode=aggressive]",
    "sshd[mode=ddos, logtype=journal]",
    """x[a="1, ]2", b='y', c=3 ][d=4]""",
    "x[a=1",
    "[a=1]",
    "x[=1]",
    "x[a=1]junk",
    "x[a=1 b=2]x",
    'x[a="1]',
    "x[]",
    "x[a=]",
    "x[a=1,]",
    "x[a=1, , b=2]",
    "x[a=1]  ",
    "x[ a = 1 ]",
    "x[a=1\n, b=2]",
    "x[a.b-c=1]",
    "x[a=[1]",
    "x[a=1]]",
    "x[a=1] [b=2]",
    """x[a='1'][b="2"]""",
    "systemd[journalfiles=/a/b.journal]",
]


def test_filter_spec() -> None:
    assert parse_filter_spec(" sshd[mode=aggressive] ") == ("sshd", {"mode": "aggressive"})
    assert parse_filter_spec("""x[a="1, ]2", b='y', c=3 ][d=4]""") == (
        "x",
        {"a": "1, ]2", "b": "y", "c": "3", "d": "4"},
    )
    assert parse_filter_spec('x[a="1" , b=2]') == ("x", {"a": "1", "b": "2"})  # fail2ban: error
    assert parse_filter_spec("x [a=1]") == ("x", {"a": "1"})  # fail2ban: looks for "x .conf"
    for bad in ("", "x[a=1", "[a=1]", "x[=1]", "x[a=1]junk", "x[a=1 b=2]x", "x[a=1]]"):
        with pytest.raises(ValueError):
            parse_filter_spec(bad)


def test_filter_spec_same_as_fail2ban(f2b: Any) -> None:
    for spec in SPECS:
        try:
            expected: Any = f2b.helpers.extractOptions(spec)
        except ValueError:
            expected = ValueError
        try:
            got: Any = parse_filter_spec(spec)
        except ValueError:
            got = ValueError
        assert got == expected, spec


def test_journalmatch() -> None:
    assert parse_journalmatch("_SYSTEMD_UNIT=sshd.service + _COMM=sshd") == (
        ("_SYSTEMD_UNIT=sshd.service",),
        ("_COMM=sshd",),
    )
    assert parse_journalmatch("A=1 B=2\n'C=x y' + D=3") == (("A=1", "B=2"), ("C=x y",), ("D=3",))
    assert parse_journalmatch("") == ()


def test_filter_features(tmp_path: Path) -> None:
    write(tmp_path, DEMO)
    fd = load_filter(tmp_path, "demo")
    pfx = r"^\S+ demod(?:\[\d+\])?:\s+"
    assert fd.name == "demo"
    assert fd.source == f"{tmp_path}/filter.d/demo.conf"
    assert fd.prefregex == f"^<F-MLFID>{pfx}</F-MLFID><F-CONTENT>.+</F-CONTENT>$"
    assert fd.failregex == (
        rf"{pfx}auth failure for <F-USER>\S+</F-USER> from <HOST>$",
        rf"{pfx}bad user from <ADDR>",
        rf"{pfx}<F-NOFAIL>note</F-NOFAIL> from <HOST> <fam>",  # conditional option: left alone
        rf"{pfx}init-extra init-extra normal-mode from <HOST>",
        rf"{pfx}local rule from <HOST>",
    )
    assert fd.ignoreregex == (rf"{pfx}trusted <HOST>#not-a-comment", "^another <HOST>")
    assert fd.datepattern == "{^LN-BEG}\n^%Y-%m-%d %H:%M:%S"
    assert fd.maxlines == 2
    assert fd.journalmatch == (
        ("_SYSTEMD_UNIT=demo.service",),
        ("_COMM=demod",),
        ("MESSAGE=a b",),
        ("_PID=1",),
    )
    assert fd.options["mode"] == "normal"
    assert fd.options["_daemon"] == "demod"
    assert fd.options["fam?family=inet6"] == "six"
    assert fd.options["mdre-aggressive"] == f"{pfx}probe from <HOST>\n{pfx}scan from <HOST>"
    assert not any(key.startswith("known/") for key in fd.options)

    aggressive = load_filter(tmp_path, 'demo[mode=aggressive, extra="x, y"]', {"maxlines": "3"})
    assert aggressive.failregex[3:6] == (
        rf"{pfx}probe from <HOST>",
        rf"{pfx}scan from <HOST>",
        rf"{pfx}x, y init-extra aggressive-mode from <HOST>",
    )
    assert aggressive.maxlines == 3
    journal = load_filter(tmp_path, "demo", {"logtype": "journal"})
    assert journal.datepattern == "{^LN-BEG}-journal\n^%Y-%m-%d %H:%M:%S"
    by_path = load_filter(tmp_path, str(tmp_path / "filter.d" / "demo.conf"))
    assert by_path == fd


@pytest.mark.parametrize("opts", DEMO_OPTIONS, ids=json.dumps)
def test_filter_same_as_fail2ban(f2b: Any, tmp_path: Path, opts: dict[str, str]) -> None:
    write(tmp_path, DEMO)
    theirs = from_stream(f2b_filter(f2b, tmp_path, "demo", opts).convert())
    assert from_filterdef(load_filter(tmp_path, "demo", opts)) == theirs
    spec = "demo[" + ", ".join(f"{k}='{v}'" for k, v in opts.items()) + "]"
    if all("'" not in v and v == v.strip() for v in opts.values()):  # values in [] are stripped
        assert from_filterdef(load_filter(tmp_path, spec)) == theirs


@pytest.mark.parametrize(
    ("files", "spec", "message"),
    [
        ({}, "nope", "{d}/filter.d/nope.conf: filter 'nope' not found"),
        (
            {"filter.d/x.conf": "[Init]\na = 1\n"},
            "x",
            "{d}/filter.d/x.conf: the filter has no [Definition]",
        ),
        (
            {"filter.d/x.conf": "[Definition]\nfailregex = a\nmaxlines = two\n"},
            "x",
            "{d}/filter.d/x.conf:3: [Definition] maxlines: 'two' is not a number",
        ),
        (
            {"filter.d/x.conf": "[Definition]\nfailregex = a\n[Init]\nmaxlines = 0\n"},
            "x",
            "{d}/filter.d/x.conf:4: [Init] maxlines: '0' is not 1 or more",
        ),
        (
            {"filter.d/x.conf": "[Definition]\nfailregex = <a>\na = <b>\nb = <failregex>\n"},
            "x",
            "{d}/filter.d/x.conf:2: [Definition] failregex: <failregex> refers to itself",
        ),
        (
            {"filter.d/x.conf": "[Definition]\nfailregex = %(nope)s\n"},
            "x",
            "{d}/filter.d/x.conf:2: [Definition] failregex: '%(nope)s' refers to an option",
        ),
        ({"filter.d/x.conf": "[Definition]\n"}, "x[mode=1", "{d}: filter 'x[mode=1': "),
        (
            {"filter.d/x.conf": "[Definition]\njournalmatch = 'A=1\n"},
            "x",
            '{d}/filter.d/x.conf:2: [Definition] journalmatch: "\'A=1": No closing quotation',
        ),
    ],
)
def test_filter_errors(tmp_path: Path, files: dict[str, str], spec: str, message: str) -> None:
    write(tmp_path, files)
    with pytest.raises(F2bConfigError) as exc:
        load_filter(tmp_path, spec)
    assert one_line(exc).startswith(message.format(d=tmp_path))


# ---------------------------------------------------------------------------------------------
# jails

JAILS = {
    **DEMO,
    "action.d/iptables-multiport.conf": "[Definition]\nactionban = true\n[Init]\nport = 1\n",
    "paths.conf": "[DEFAULT]\ndemo_log = /var/log/demo.log\ndemo_backend = auto\n",
    "jail.conf": r"""
[INCLUDES]
before = paths.conf

[DEFAULT]
bantime = 10m
findtime = 10m
maxretry = 5
maxmatches = %(maxretry)s
backend = auto
usedns = warn
logencoding = auto
enabled = false
mode = normal
filter = %(__name__)s[mode=%(mode)s]
port = 0:65535
protocol = tcp
banaction = iptables-multiport
action_ = %(banaction)s[port="%(port)s", protocol="%(protocol)s"]
action_mwl = %(action_)s
             mail[logpath="%(logpath)s"]
action = %(action_)s
ignorecommand =

[demo]
port = ssh
logpath = %(demo_log)s
backend = %(demo_backend)s

[demo-aggr]
filter = demo[mode=aggressive, extra="with, comma"]
logpath = /var/log/a.log tail
          /var/log/b*.log head
          /var/log/c.log
maxretry = 3
bantime = 1h 30m
findtime = 1d
usedns = no

[demo-journal]
filter = demo
backend = systemd
journalmatch = _SYSTEMD_UNIT=other.service
datepattern = ^%%s
logencoding = utf-8

[off]
filter = demo
logpath = /var/log/off.log

[demo-override]
filter = demo[logtype=short]
backend = systemd
prefregex = ^Test <F-CONTENT>.+</F-CONTENT>$
failregex = ^Test unused <ADDR>$
ignoreregex = ^Test ignore <ADDR>$
journalmatch = _COMM=test
maxlines = 3
usedns = no
""",
    "jail.d/10-enable.conf": "[demo]\nenabled = true\n",
    "jail.local": r"""
[DEFAULT]
ignoreip = 127.0.0.1/8 ::1, 10.0.0.0/8
           example.org

[demo]
port = %(known/port)s,2222
failregex = %(known/failregex)s
            ^extra jail rule <HOST> %(known/mode)s
bantime.increment = true
bantime.factor = 2
bantime.multipliers = 1 2 4 8
bantime.maxtime = 1w
bantime.rndtime = 10m
bantime.overalljails = yes
bantime.formula = ban.Time * banFactor
ignorecommand = /usr/bin/check <ip>

[demo-journal]
enabled = true
""",
    "jail.d/20-x.local": "[demo-aggr]\nenabled = true\nbantime = -1\n",
}


def test_jails(tmp_path: Path) -> None:
    write(tmp_path, JAILS)
    jails = {jail.name: jail for jail in load_jails(tmp_path)}
    assert list(jails) == ["demo", "demo-aggr", "demo-journal", "off", "demo-override"]
    demo = jails["demo"]
    assert demo.enabled
    assert demo.filter == "demo[mode=normal]"
    assert demo.logpath == ("/var/log/demo.log",)
    assert demo.backend == "auto"
    assert (demo.maxretry, demo.findtime, demo.bantime, demo.maxmatches) == (5, 600.0, 600.0, 5)
    assert demo.port == "ssh,2222"
    assert demo.protocol == "tcp"
    assert demo.ignoreip == ("127.0.0.1/8", "::1", "10.0.0.0/8", "example.org")
    assert demo.ignoreself
    assert demo.ignorecommand == "/usr/bin/check <ip>"
    assert demo.usedns == "warn"
    assert demo.logencoding == "auto"
    assert (demo.datepattern, demo.journalmatch) == (None, None)
    assert demo.bantime_increment
    assert demo.bantime_factor == 2.0
    assert demo.bantime_formula == "ban.Time * banFactor"
    assert demo.bantime_multipliers == (1.0, 2.0, 4.0, 8.0)
    assert demo.bantime_maxtime == 7 * 86400.0
    assert demo.bantime_rndtime == 600.0
    assert demo.bantime_overalljails
    assert demo.options["action"] == 'iptables-multiport[port="ssh,2222", protocol="tcp"]'
    assert demo.options["banaction"] == "iptables-multiport"
    assert demo.options["fail2ban_confpath"] == str(tmp_path)
    assert demo.options["failregex"].endswith("\n^extra jail rule <HOST> normal")
    assert "action_mwl" in demo.options  # it has a logpath to interpolate
    aggr = jails["demo-aggr"]
    assert aggr.filter == 'demo[mode=aggressive, extra="with, comma"]'
    assert aggr.logpath == ("/var/log/a.log", "/var/log/b*.log", "/var/log/c.log")
    assert (aggr.maxretry, aggr.findtime, aggr.bantime) == (3, 86400.0, -1.0)
    assert aggr.usedns == "no"
    assert not aggr.bantime_increment
    assert (aggr.bantime_factor, aggr.bantime_formula, aggr.bantime_multipliers) == (1.0, None, ())
    assert (aggr.bantime_maxtime, aggr.bantime_rndtime) == (None, None)
    assert aggr.ignorecommand is None
    journal = jails["demo-journal"]
    assert journal.backend == "systemd"
    assert journal.journalmatch == (("_SYSTEMD_UNIT=other.service",),)
    assert journal.datepattern == "^%s"
    assert journal.logencoding == "utf-8"
    assert "action_mwl" not in journal.options  # no logpath: nothing could use it
    assert not jails["off"].enabled
    assert [j.name for j in load_jails(tmp_path, enabled_only=True)] == [
        "demo",
        "demo-aggr",
        "demo-journal",
    ]


def test_jail_filters(tmp_path: Path) -> None:
    write(tmp_path, JAILS)
    jails = {jail.name: jail for jail in load_jails(tmp_path)}
    pfx = r"^\S+ demod(?:\[\d+\])?:\s+"
    demo = load_jail_filter(tmp_path, jails["demo"])
    assert demo is not None
    assert demo.failregex[-1] == "^extra jail rule <HOST> normal"
    assert demo.failregex[-2] == rf"{pfx}local rule from <HOST>"
    journal = load_jail_filter(tmp_path, jails["demo-journal"])
    assert journal is not None
    assert journal.datepattern == "^%s"  # the jail's
    assert journal.journalmatch == (("_SYSTEMD_UNIT=other.service",),)
    assert journal.options["logtype"] == "journal"  # backend systemd
    assert load_filter(tmp_path, "demo").options["logtype"] == "file"
    override = load_jail_filter(tmp_path, jails["demo-override"])
    assert override is not None
    assert (override.prefregex, override.failregex, override.ignoreregex) == (
        "^Test <F-CONTENT>.+</F-CONTENT>$",
        ("^Test unused <ADDR>$",),
        ("^Test ignore <ADDR>$",),
    )
    # [Init] maxlines = 2 wins over the jail's 3: fail2ban sends the jail's first
    assert (override.maxlines, override.journalmatch) == (2, (("_COMM=test",),))
    assert override.options["logtype"] == "short"  # an argument wins over the backend


def test_jails_same_as_fail2ban(f2b: Any, tmp_path: Path) -> None:
    write(tmp_path, JAILS)
    assert compare_jails(f2b, tmp_path) == 5
    _, enabled = f2b_jails(f2b, tmp_path, force_enable=False)
    assert [j.name for j in load_jails(tmp_path, enabled_only=True)] == list(enabled)


def test_jail_defaults(tmp_path: Path) -> None:
    write(tmp_path, {"jail.local": "[j]\n"})
    (jail,) = load_jails(tmp_path)
    assert jail == JailDef(
        name="j",
        enabled=False,
        filter="",
        logpath=(),
        logencoding="auto",
        backend="auto",
        maxretry=3,
        findtime=600.0,
        bantime=600.0,
        ignoreip=(),
        ignoreself=True,
        ignorecommand=None,
        usedns="warn",
        port="0:65535",
        protocol="tcp",
        maxmatches=None,
        datepattern=None,
        journalmatch=None,
        bantime_increment=False,
        bantime_factor=1.0,
        bantime_formula=None,
        bantime_multipliers=(),
        bantime_maxtime=None,
        bantime_rndtime=None,
        bantime_overalljails=False,
        options=jail.options,
    )
    assert dict(jail.options) == {"fail2ban_version": "1.0.2", "fail2ban_confpath": str(tmp_path)}
    assert load_jail_filter(tmp_path, jail) is None


def test_jail_file_order(tmp_path: Path) -> None:
    """fail2ban's order: jail.conf, jail.d/*.conf, jail.local, jail.d/*.local."""
    write(
        tmp_path,
        {
            "jail.conf": "[j]\nmaxretry = 1\nfindtime = 1\nbantime = 1\nport = 1\n",
            "jail.d/b.conf": "[j]\nmaxretry = 2\nfindtime = 2\nbantime = 2\n",
            "jail.d/a.conf": "[j]\nmaxretry = 3\nfindtime = 3\n",
            "jail.local": "[j]\nmaxretry = 4\nport = %(known/port)s,4\n",
            "jail.d/a.local": "[j]\nport = %(known/port)s,5\n",
        },
    )
    (jail,) = load_jails(tmp_path)
    assert (jail.maxretry, jail.findtime, jail.bantime, jail.port) == (4, 2.0, 2.0, "1,4,5")


def test_enabled_only_skips_what_fail2ban_would_not_read(tmp_path: Path) -> None:
    write(
        tmp_path, {"jail.conf": "[off]\nfilter = nothere\nmaxretry = five\n[on]\nenabled = yes\n"}
    )
    assert [jail.name for jail in load_jails(tmp_path, enabled_only=True)] == ["on"]
    with pytest.raises(F2bConfigError, match=r":3: \[off\] maxretry: 'five' is not a number"):
        load_jails(tmp_path)


def test_disabled_jail_with_missing_filter_is_read(tmp_path: Path) -> None:
    write(tmp_path, {"jail.conf": "[j]\nfilter = nothere\nmaxretry = 2\n"})
    (jail,) = load_jails(tmp_path)
    assert (jail.enabled, jail.filter, jail.maxretry) == (False, "nothere", 2)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("maxretry = five", "[sshd] maxretry: 'five' is not a number"),
        ("maxmatches = 1.5", "[sshd] maxmatches: '1.5' is not a number"),
        ("maxlines = 0", "[sshd] maxlines: '0' is not 1 or more"),
        ("maxlines = x", "[sshd] maxlines: 'x' is not a number"),
        ("bantime = forever", "[sshd] bantime: 'forever' is not a time"),
        ("findtime = 10 minutes ago", "[sshd] findtime: '10 minutes ago' is not a time"),
        ("bantime.maxtime = x", "[sshd] bantime.maxtime: 'x' is not a time"),
        ("bantime.factor = two", "[sshd] bantime.factor: 'two' is not a number"),
        ("bantime.multipliers = 1 2 x", "[sshd] bantime.multipliers: '1 2 x' is not a list"),
        ("usedns = maybe", "[sshd] usedns: 'maybe' is not one of no, raw, warn, yes"),
        ("ignoreself = perhaps", "[sshd] ignoreself: 'perhaps' is not a boolean"),
        ("backend = inotify", "[sshd] backend: 'inotify' is not a backend"),
        ("backend = systemd[x", "[sshd] backend: 'systemd[x': "),
        ("logencoding = klingon", "[sshd] logencoding: 'klingon' is not a known encoding"),
        ("journalmatch = 'A", '[sshd] journalmatch: "\'A": No closing quotation'),
        ("filter = sshd[mode", "[sshd] filter: 'sshd[mode': "),
        ("filter = nothere", "filter 'nothere' not found"),
        (
            "logpath = %(nothere)s",
            "[sshd] logpath: '%(nothere)s' refers to an option that is not set",
        ),
    ],
)
def test_jail_errors(tmp_path: Path, line: str, message: str) -> None:
    write(
        tmp_path,
        {
            "filter.d/sshd.conf": "[Definition]\nfailregex = x <HOST>\n",
            "jail.conf": "[DEFAULT]\nmaxretry = 5\n\n[sshd]\nenabled = true\n",
            "jail.local": f"# local settings\n[sshd]\n{line}\n",
        },
    )
    with pytest.raises(F2bConfigError) as exc:
        load_jails(tmp_path)
    text = one_line(exc)
    if "not found" in message:
        assert text.startswith(f"{tmp_path}/filter.d/nothere.conf: {message}")
    else:
        assert text.startswith(f"{tmp_path}/jail.local:3: {message}")


def test_error_in_default_names_its_line_and_the_jail(tmp_path: Path) -> None:
    write(tmp_path, {"jail.conf": "[DEFAULT]\nbantime = soon\n\n[sshd]\nfilter =\n"})
    with pytest.raises(F2bConfigError) as exc:
        load_jails(tmp_path)
    assert one_line(exc) == (
        f"{tmp_path}/jail.conf:2: [sshd] bantime: 'soon' is not a time "
        "(examples: 600, 10m, 1h 30m, 1d, 1w, 1mo, 1y, -1)"
    )


def test_no_jail_files(tmp_path: Path) -> None:
    with pytest.raises(F2bConfigError, match=r"jail\.conf: not found"):
        load_jails(tmp_path)


# ---------------------------------------------------------------------------------------------
# the real /etc/fail2ban against fail2ban itself


def _real_filters() -> list[str]:
    folder = ETC / "filter.d"
    if not folder.is_dir():
        return []
    return sorted(
        name[: -len(".conf")]
        for name in os.listdir(folder)
        if name.endswith(".conf") and not name.endswith("common.conf")
    )


def _sample_options() -> Iterator[tuple[str, dict[str, str]]]:
    """(log file, options) for every filterOptions line of fail2ban's sample logs."""
    if not F2B_SAMPLES.is_dir():
        return
    for path in sorted(F2B_SAMPLES.iterdir()):
        if not path.is_file():
            continue
        common: dict[str, Any] = {}
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = re.match(r"^#+ ?(fileOptions|filterOptions):(.+)$", line)
            if not match:
                continue
            data = json.loads(match.group(2))
            if match.group(1) == "fileOptions":
                common = data
                continue
            for each in data if isinstance(data, list) else [data]:
                opts = {**common, **each}
                yield path.name, {k: str(v) for k, v in opts.items() if not k.startswith("test.")}


def _combinations() -> tuple[dict[str, list[dict[str, str]]], list[dict[str, str]]]:
    own: dict[str, list[dict[str, str]]] = {}
    every: list[dict[str, str]] = [{}]
    for log, opts in _sample_options():
        name = "sshd" if log == "sshd-journal" else log  # added to sshd's samples (addFILE)
        own.setdefault(name, [{}])
        if opts not in own[name]:
            own[name].append(opts)
        if opts not in every:
            every.append(opts)
    return own, every


OWN_OPTIONS, EVERY_OPTIONS = _combinations()


@pytest.mark.parametrize("name", _real_filters())
def test_real_filter_same_as_fail2ban(f2b: Any, name: str) -> None:
    """Each filter with its samples' options, then with every other sample's options too."""
    own = OWN_OPTIONS.get(name, [{}])
    for opts in own + [o for o in EVERY_OPTIONS if o not in own]:
        reader = f2b_filter(f2b, ETC, name, opts)
        theirs = from_stream(reader.convert())
        if "maxlines" in reader._opts or "maxlines" in reader._initOpts:
            combined = reader.getCombined()
            if combined.get("maxlines") is None:  # fail2ban: "Wrong int value", uses 1
                with pytest.raises(F2bConfigError, match=r"maxlines: .* is not a number"):
                    load_filter(ETC, name, opts)
                continue
        assert from_filterdef(load_filter(ETC, name, opts)) == theirs, (name, opts)


def test_real_filter_count(f2b: Any) -> None:
    if not _real_filters():
        pytest.skip("no /etc/fail2ban/filter.d")
    assert len(_real_filters()) >= 80
    assert len(EVERY_OPTIONS) >= 15


def test_real_jails_same_as_fail2ban(f2b: Any) -> None:
    if not (ETC / "jail.conf").is_file():
        pytest.skip("no /etc/fail2ban/jail.conf")
    assert compare_jails(f2b, ETC) >= 80
    _, enabled = f2b_jails(f2b, ETC, force_enable=False)
    assert [j.name for j in load_jails(ETC, enabled_only=True)] == list(enabled)
