"""The signed, versioned baseline: tampering is refused; accept, diff and restore work."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.conftest import Instance, by_path


def db(instance: Instance) -> sqlite3.Connection:
    return sqlite3.connect(instance.state / "stockade.db", isolation_level=None)


def test_init_creates_a_root_only_key_and_a_signed_version(watched: Instance) -> None:
    key = watched.state / "keys" / "files.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (watched.state / "keys" / "files.pub").exists()
    ((version, sig, key_id),) = db(watched).execute(
        "SELECT version, signature, key_id FROM baseline_versions"
    )
    assert version == 1 and len(sig) == 64 and len(key_id) == 32
    r = watched.run("files", "key", "--json")
    assert json.loads(r.out)["fingerprint"] == key_id


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE baseline_entries SET data = replace(data, 'sha256\":\"', 'sha256\":\"0') "
        "WHERE CAST(key AS TEXT) LIKE '%ls'",
        "DELETE FROM baseline_entries WHERE CAST(key AS TEXT) LIKE '%libc.so'",
        "INSERT INTO baseline_entries (part, key, data, vfrom) SELECT part, key || '.evil', data, "
        "vfrom FROM baseline_entries WHERE CAST(key AS TEXT) LIKE '%bash'",
        "UPDATE baseline_versions SET meta = replace(meta, 'tree', 'elsewhere')",
        "UPDATE baseline_versions SET signature = randomblob(64)",
        "UPDATE baseline_versions SET version = 7",
    ],
    ids=["entry-changed", "entry-deleted", "entry-added", "meta-changed", "signature", "version"],
)
def test_tampered_baseline_is_refused(watched: Instance, tree: Path, tamper: str) -> None:
    (tree / "bin" / "ls").write_bytes(b"trojan")  # what the intruder wants to hide
    db(watched).execute(tamper)
    r = watched.cli("files", "check")
    assert r.rc == 2
    assert r.one_line_error, r.err
    assert "refusing" in r.err or "does not exist" in r.err
    assert r.out == ""  # nothing compared, nothing listed
    if "version = 7" not in tamper:
        alerts = watched.run("alerts", "--json").json_lines()
        assert [a["kind"] for a in alerts] == ["baseline-tampered"]
        assert alerts[0]["severity"] == "critical"


def test_replaced_public_key_is_refused(watched: Instance) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (watched.state / "keys" / "files.pub").write_bytes(other)
    r = watched.run("files", "check")
    assert r.rc == 2 and r.one_line_error and "signed by key" in r.err


def test_missing_or_damaged_public_key_is_refused(watched: Instance) -> None:
    pub = watched.state / "keys" / "files.pub"
    pub.write_text("garbage")
    r = watched.run("files", "check")
    assert r.rc == 2 and r.one_line_error and "damaged" in r.err
    pub.unlink()
    r = watched.run("files", "check")
    assert r.rc == 2 and r.one_line_error and "public key" in r.err


def test_pinned_fingerprint(watched: Instance) -> None:
    fp = json.loads(watched.run("files", "key", "--json").out)["fingerprint"]
    watched.write(public_key_fingerprint=fp)
    assert watched.run("files", "check").rc == 0
    watched.write(public_key_fingerprint="0" * 32)
    r = watched.run("files", "check")
    assert r.rc == 2 and "pinned" in r.err


def test_check_without_baseline(instance: Instance, tree: Path) -> None:
    instance.watch(tree)
    r = instance.run("files", "check")
    assert r.rc == 2 and r.one_line_error and "stockade files init" in r.err


def test_accept_all_then_versions_diff_restore(watched: Instance, tree: Path) -> None:
    (tree / "bin" / "ls").write_bytes(b"upgraded ls")
    (tree / "bin" / "new").write_bytes(b"new tool")
    (tree / "lib" / "libc.so").unlink()
    assert watched.check()[0] == 1
    r = watched.run("files", "accept", "--json")
    accepted = json.loads(r.out)
    assert accepted["version"] == 2
    assert {Path(a["path"]).name: a["change"] for a in accepted["accepted"]} == {
        "ls": "changed",
        "new": "added",
        "libc.so": "removed",
    }
    assert watched.check()[0] == 0
    versions = watched.run("files", "versions", "--json").json_lines()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["note"] == "accept all"
    diff = {
        Path(d["path"]).name: d for d in watched.run("files", "diff", "1", "--json").json_lines()
    }
    assert set(diff) == {"ls", "new", "libc.so"}
    assert "sha256" in diff["ls"]["attributes"]
    # the previous version is still there, whole
    r = watched.run("files", "show", tree / "lib" / "libc.so", "--version", "1", "--json")
    assert json.loads(r.out)["entry"]["type"] == "file"
    assert watched.run("files", "show", tree / "lib" / "libc.so").rc == 2
    # restoring version 1 makes a new version 3 equal to it: the accepted changes show again
    r = watched.run("files", "restore", "1")
    assert r.rc == 0 and "version 3" in r.out
    rc, findings = watched.check()
    assert rc == 1 and set(Path(p).name for p in by_path(findings)) == {"ls", "new", "libc.so"}
    assert watched.run("files", "diff", "1", "3", "--json").out == ""


def test_accept_only_named_paths(watched: Instance, tree: Path) -> None:
    (tree / "bin" / "ls").write_bytes(b"changed ls")
    (tree / "bin" / "ps").write_bytes(b"changed ps")
    r = watched.run("files", "accept", tree / "bin" / "ls")
    assert r.rc == 0 and "1 change(s) accepted" in r.out
    _, findings = watched.check()
    assert set(by_path(findings)) == {str(tree / "bin" / "ps")}


def test_accept_a_folder_takes_everything_below(watched: Instance, tree: Path) -> None:
    (tree / "lib" / "deep" / "mod.ko").write_bytes(b"v2")
    (tree / "lib" / "deep" / "extra.ko").write_bytes(b"x")
    (tree / "bin" / "ps").write_bytes(b"changed ps")
    assert watched.run("files", "accept", tree / "lib").rc == 0
    _, findings = watched.check()
    assert set(by_path(findings)) == {str(tree / "bin" / "ps")}


def test_accept_with_nothing_to_accept(watched: Instance) -> None:
    r = watched.run("files", "accept")
    assert r.rc == 0 and "nothing to accept" in r.out
    assert len(watched.run("files", "versions", "--json").json_lines()) == 1


def test_init_of_extra_paths_merges_into_the_baseline(
    watched: Instance, tree: Path, tmp_path: Path
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.php").write_text("<?php ok")
    r = watched.run("files", "init", www)
    assert r.rc == 0
    assert watched.run("files", "show", tree / "bin" / "ls").rc == 0  # kept
    (www / "index.php").write_text("<?php eval($_GET['x'])")
    (tree / "bin" / "ls").write_bytes(b"x")
    _, findings = watched.check(www)  # only the path asked for
    assert set(by_path(findings)) == {str(www / "index.php")}
    _, findings = watched.check()  # every root of the baseline
    assert set(by_path(findings)) == {str(www / "index.php"), str(tree / "bin" / "ls")}


def test_check_of_a_path_outside_the_baseline(watched: Instance, tmp_path: Path) -> None:
    r = watched.run("files", "check", tmp_path / "elsewhere")
    assert r.rc == 2 and r.one_line_error and "files init" in r.err


def test_passphrase_protected_key(instance: Instance, tree: Path) -> None:
    instance.watch(tree)
    env = {"STOCKADE_PASSPHRASE": "correct horse"}
    assert instance.run("files", "init", env=env).rc == 0
    assert b"ENCRYPTED" in (instance.state / "keys" / "files.key").read_bytes()
    (tree / "bin" / "ls").write_bytes(b"x")
    assert instance.run("files", "check").rc == 1  # checking needs no passphrase
    r = instance.run("files", "accept")
    assert r.rc == 2 and r.one_line_error and "passphrase" in r.err
    r = instance.run("files", "accept", env={"STOCKADE_PASSPHRASE": "wrong"})
    assert r.rc == 2 and "wrong passphrase" in r.err
    secret = instance.base / "pass"
    secret.write_text("correct horse\n")
    instance.write(passphrase_file=str(secret))
    assert instance.run("files", "accept").rc == 0
    assert instance.run("files", "check").rc == 0


def test_versions_are_pruned(watched: Instance, tree: Path) -> None:
    watched.write(keep_versions=2)
    for i in range(4):
        (tree / "bin" / "ls").write_bytes(b"v%d" % i)
        assert watched.run("files", "accept").rc == 0
    versions = watched.run("files", "versions", "--json").json_lines()
    assert [v["version"] for v in versions] == [4, 5]
    assert watched.run("files", "check").rc == 0
    assert watched.run("files", "diff", "4", "--json").rc == 0
    (rows,) = db(watched).execute("SELECT count(*) FROM baseline_entries").fetchone()
    assert rows == versions[-1]["entries"] + 1  # plus ls as it was in version 4


def test_reinit_after_tampering_recovers(watched: Instance, tree: Path) -> None:
    db(watched).execute("UPDATE baseline_entries SET data = 'x'")
    assert watched.run("files", "check").rc == 2
    assert watched.run("files", "init").rc == 0
    assert watched.run("files", "check").rc == 0


def test_store_survives_a_failed_command(watched: Instance, tree: Path) -> None:
    before = watched.run("files", "versions", "--json").out
    r = watched.run("files", "restore", "99")
    assert r.rc == 2 and r.one_line_error
    assert watched.run("files", "versions", "--json").out == before
    assert watched.run("files", "check").rc == 0


def test_signing_key_in_a_place_that_cannot_be_written(instance: Instance, tree: Path) -> None:
    instance.watch(tree)
    instance.write(signing_key=str(tree / "bin" / "ls" / "files.key"))  # below a file
    r = instance.run("files", "init")
    assert r.rc == 2 and r.one_line_error and "files.signing_key" in r.err
    assert instance.run("files", "versions", "--json").out == ""  # nothing half-written


def test_key_missing_but_public_key_present(watched: Instance, tree: Path) -> None:
    os.unlink(watched.state / "keys" / "files.key")
    (tree / "bin" / "ls").write_bytes(b"x")
    r = watched.run("files", "accept")
    assert r.rc == 2 and r.one_line_error and "signing key" in r.err
