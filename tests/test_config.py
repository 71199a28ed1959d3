"""Configuration: validation with file, key and line; check and show; every command's flags."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.cli.main import build_parser
from stockade.config.load import find_line, parse_config, quickstart_text
from stockade.errors import ConfigError
from tests.conftest import Instance, run_cli

BAD = [
    ("[files]\nschedul = '1h'\n", "x.toml:2: files.schedul: unknown key"),
    ("[files]\nschedule = 'soon'\n", "x.toml:2: files.schedule: 'soon' is not a duration"),
    (
        "[files]\nworkers = -1\n",
        "x.toml:2: files.workers: Input should be greater than or equal to 0",
    ),
    ("[files]\nrealtime = 'yes'\n", "x.toml:2: files.realtime: Input should be a valid boolean"),
    (
        "[[files.rules]]\npath = '/a'\n\n[[files.rules]]\npath = '/b'\nseverity = 'hgih'\n",
        "x.toml:6: files.rules[1].severity: unknown severity 'hgih'",
    ),
    (
        "[[files.rules]]\npath = 'relative'\n",
        "x.toml:2: files.rules[0].path: 'relative' is not an absolute path",
    ),
    (
        "[[files.rules]]\nattributes = 'binaries'\n",
        "x.toml:1: files.rules[0].path: required key is missing",
    ),
    (
        "[[files.rules]]\npath = '/a'\nattributes = 'binaries+sha1'\n",
        "x.toml:3: files.rules[0].attributes: 'binaries+sha1': unknown attribute or set 'sha1'",
    ),
    (
        "[[files.rules]]\npath = '/a'\nrecurse = -2\n",
        "x.toml:3: files.rules[0].recurse: recurse must be",
    ),
    (
        "[[files.rules]]\npath = '/a'\nexclude_regex = ['(']\n",
        "x.toml:3: files.rules[0].exclude_regex: bad regular expression",
    ),
    (
        "[files.attribute_sets]\nmine = 'perms+nonsense'\n",
        "x.toml:1: files.attribute_sets: 'perms+nonsense'",
    ),
    ("[store]\nbackend = 'mysql'\n", "x.toml:2: store.backend: Input should be 'sqlite'"),
    ("[stockade]\nlog_level = 'loud'\n", "x.toml:2: stockade.log_level:"),
    ("[files\n", "x.toml:1: TOML syntax error"),
    ("files = 3\n", "x.toml:1: files: Input should be a valid dictionary"),
    (
        "[[files.rules]]\npath = '/a'\n[[files.rules]]\npath = '/a/'\n",
        "x.toml:4: files.rules[1].path: /a/ is already watched by rules[0]",
    ),
    (
        "[web]\nlisten = 'localhost:80'\n",
        "x.toml:2: web.listen: 'localhost:80': 'localhost' is not an IP",
    ),
    (
        "[web]\nlisten = '::1:80'\n",
        "x.toml:2: web.listen: '::1:80': write an IPv6 address in brackets",
    ),
    (
        "[web]\nlisten = '127.0.0.1:99999'\n",
        "x.toml:2: web.listen: '127.0.0.1:99999': the port must be",
    ),
    ("[web]\ntls_cert = '/c.pem'\n", "x.toml:1: web: tls_cert and tls_key go together"),
    ("[web]\nsession_lifetime = 'forever'\n", "x.toml:2: web.session_lifetime:"),
    (
        "[surprise]\n",
        "x.toml:1: surprise: unknown key; check its spelling (allowed: stockade, store, files, logs, sockets, scan",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_values_name_file_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "x.toml")
    msg = str(e.value)
    assert msg.startswith(expected), msg
    assert "\n" not in msg


@pytest.mark.parametrize(("text", "expected"), BAD[:4])
def test_bad_configuration_exits_2_with_one_line(tmp_path: Path, text: str, expected: str) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text(text)
    for cmd in (["config", "check"], ["files", "check"], ["alerts"], ["run"]):
        r = run_cli("--config", str(cfg), "--state-dir", str(tmp_path / "s"), *cmd, timeout=60)
        assert r.rc == 2, (cmd, r.err)
        assert r.one_line_error, r.err
        assert r.err.startswith(f"stockade: error: {cfg}:"), r.err


def test_unreadable_and_missing_configuration(tmp_path: Path) -> None:
    r = run_cli("--config", str(tmp_path / "nope.toml"), "config", "check")
    assert r.rc == 2 and r.one_line_error and "no such configuration file" in r.err
    r = run_cli("--config", str(tmp_path), "config", "check")
    assert r.rc == 2 and r.one_line_error and "is a folder" in r.err
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"[stockade]\nhost = '\xe9'\n")
    r = run_cli("--config", str(bad), "config", "check")
    assert r.rc == 2 and r.one_line_error and ":2: not valid UTF-8" in r.err


def test_check_accepts_a_good_file(instance: Instance, tree: Path) -> None:
    instance.watch(tree)
    r = instance.run("config", "check")
    assert r.rc == 0 and "configuration is valid" in r.out


def test_show_prints_the_effective_configuration_with_defaults(
    instance: Instance, tree: Path
) -> None:
    instance.watch(tree, severity="low")
    r = instance.run("config", "show")
    assert r.rc == 0
    shown = tomllib.loads(r.out)
    assert shown["files"]["schedule"] == "1d"  # a default, written back as a duration
    assert shown["files"]["rules"] == [
        {
            "path": str(tree),
            "attributes": "binaries",
            "severity": "low",
            "recurse": True,
            "exclude": [],
            "exclude_regex": [],
        }
    ]
    # what show prints is itself a valid configuration meaning the same
    assert parse_config(r.out, "shown") == parse_config(instance.config.read_text(), "orig")


def test_bundled_quickstart_is_used_without_a_configuration_file(tmp_path: Path) -> None:
    r = run_cli("--state-dir", str(tmp_path), "config", "show")
    if Path("/etc/stockade/stockade.toml").exists():
        pytest.skip("this machine has /etc/stockade/stockade.toml")
    assert r.rc == 0
    assert "bundled quick-start configuration" in r.out
    shown = tomllib.loads(r.out)
    paths = {rule["path"] for rule in shown["files"]["rules"]}
    assert {"/usr/bin", "/usr/sbin", "/usr/lib", "/etc", "/boot", "/bin", "/sbin"} <= paths
    assert parse_config(quickstart_text(), "q") == parse_config(r.out, "shown")


def test_every_command_accepts_config_and_state_dir() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands: list[list[str]] = []
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        nested = [
            a for a in p._actions if getattr(a, "choices", None) and a.dest.endswith("command")
        ]
        if nested:
            commands += [[name, n] for n in nested[0].choices]
        else:
            commands.append([name])
    assert len(commands) >= 13
    for cmd in commands:
        positional = {
            ("files", "diff"): ["1"],
            ("files", "restore"): ["1"],
            ("files", "show"): ["/x"],
            ("logs", "test"): ["/var/log/auth.log", "sshd"],
            ("bans", "ban"): ["192.0.2.1"],
            ("bans", "unban"): ["192.0.2.1"],
            ("traceroute",): ["192.0.2.1"],
            ("ping",): ["192.0.2.1"],
            ("notify", "test"): ["hook"],
        }.get(tuple(cmd), [])
        args = parser.parse_args([*cmd, *positional, "--config", "/c.toml", "--state-dir", "/s"])
        assert str(args.config) == "/c.toml" and str(args.state_dir) == "/s", cmd


def test_find_line_locates_nested_keys() -> None:
    text = "[files]\nworkers = 2\n\n[[files.rules]]\npath = '/a'\n[[files.rules]]\npath = '/b'\n"
    assert find_line(text, ["files", "workers"]) == 2
    assert find_line(text, ["files", "rules", 1, "path"]) == 7
    assert find_line(text, ["files", "rules", 1, "severity"]) == 6
    assert find_line(text, ["nothing"]) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_config_or_a_config_error(text: str) -> None:
    try:
        parse_config(text, "fuzz.toml")
    except ConfigError as e:
        assert "\n" not in str(e).strip()


_values = st.one_of(
    st.integers(),
    st.text(max_size=20),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=5), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "schedule",
                "workers",
                "realtime",
                "debounce",
                "rules",
                "setuid_severity",
                "attribute_sets",
                "exclude",
                "bogus",
            ]
        ),
        _values,
        max_size=4,
    )
)
def test_fuzzed_files_section(section: dict) -> None:
    import tomli_w

    try:
        text = tomli_w.dumps({"files": section})
    except (TypeError, ValueError):
        return
    try:
        parse_config(text, "fuzz.toml")
    except ConfigError as e:
        assert str(e).startswith("fuzz.toml")
