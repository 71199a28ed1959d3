"""Package awareness against a real Debian package, installed and upgraded with dpkg.

The test builds two versions of a small package with dpkg-deb, installs the first, builds a
baseline, upgrades to the second, and checks that stockade says "changed by package upgrade"
for what dpkg's manifest explains, and "critical" for what it does not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Instance, by_path
from tests.debpkg import BIN, ETC, LIB, PKG, dpkg, dpkg_lock_held


@pytest.fixture
def pkg_instance(instance: Instance, debs: dict[str, Path]) -> Instance:
    instance.write(package_check=True)
    instance.watch(LIB, severity="high")
    instance.watch(ETC, attributes="config", severity="medium")
    instance.watch(BIN, severity="high")
    r = instance.run("files", "init")
    assert r.rc == 0, r.err
    return instance


def test_package_upgrade_is_recognised(pkg_instance: Instance, debs: dict[str, Path]) -> None:
    dpkg("-i", debs["2.0"])
    rc, findings = pkg_instance.check()
    assert rc == 1
    f = by_path(findings)
    tool = f[str(LIB / "tool")]
    assert tool["classification"] == "package-upgrade" and tool["severity"] == "low"
    assert tool["package"] == PKG
    assert {"sha256", "size"} <= set(tool["attributes"])
    assert f[str(LIB / "plugin.so")]["change"] == "added"
    assert f[str(LIB / "plugin.so")]["classification"] == "package-upgrade"
    # dpkg lists bin/stockade-testpkg; the file is reached through /usr/bin (merged /usr)
    if Path("/bin").is_symlink():
        assert f[str(BIN)]["classification"] == "package-upgrade"
    assert f[str(ETC / "tool.conf")]["classification"] == "package-upgrade"  # conffile md5 matches
    # same content, but dpkg wrote it anew (inode, times): explained by the package too
    assert f[str(LIB / "data.txt")]["classification"] == "package-upgrade"
    assert "sha256" not in f[str(LIB / "data.txt")]["attributes"]
    # the human report summarises instead of listing every upgraded file
    r = pkg_instance.run("files", "check", "--no-record")
    assert "files changed by package upgrades" in r.out
    assert str(LIB / "tool") not in r.out
    alerts = pkg_instance.run("alerts", "--json").json_lines()
    summary = [a for a in alerts if a["kind"] == "package-upgrade"]
    assert len(summary) == 1 and summary[0]["severity"] == "low"
    assert summary[0]["detail"]["packages"] == [PKG]
    assert not [a for a in alerts if a["severity"] in ("high", "critical")]


def test_file_disagreeing_with_its_package_is_critical(pkg_instance: Instance) -> None:
    tool = LIB / "tool"
    st = tool.stat()
    tool.write_bytes(b"\x7fELF trojan  v1")  # same size as version 1
    os.utime(tool, ns=(st.st_atime_ns, st.st_mtime_ns))
    _, findings = pkg_instance.check()
    f = by_path(findings)[str(tool)]
    assert f["classification"] == "package-mismatch"
    assert f["severity"] == "critical"
    assert f["package"] == PKG


def test_trojan_after_upgrade_is_still_critical(
    pkg_instance: Instance, debs: dict[str, Path]
) -> None:
    dpkg("-i", debs["2.0"])
    (LIB / "tool").write_bytes(b"trojan dropped during the upgrade")
    _, findings = pkg_instance.check()
    assert by_path(findings)[str(LIB / "tool")]["severity"] == "critical"
    assert by_path(findings)[str(LIB / "plugin.so")]["classification"] == "package-upgrade"


def test_edited_conffile_keeps_the_rule_severity(pkg_instance: Instance) -> None:
    (ETC / "tool.conf").write_text("# edited by the administrator\n")
    _, findings = pkg_instance.check()
    f = by_path(findings)[str(ETC / "tool.conf")]
    assert f["classification"] == "conffile-modified" and f["severity"] == "medium"


def test_permissions_changed_on_package_file_are_not_excused(pkg_instance: Instance) -> None:
    (LIB / "tool").chmod(0o4755)
    _, findings = pkg_instance.check()
    f = by_path(findings)[str(LIB / "tool")]
    assert f["classification"] == "modified" and f["severity"] == "critical"


def test_accept_packages_only(pkg_instance: Instance, debs: dict[str, Path]) -> None:
    dpkg("-i", debs["2.0"])
    (LIB / "data.txt").write_text("edited by hand")  # package-mismatch: must stay reported
    r = pkg_instance.run("files", "accept", "--packages", "--json")
    assert r.rc == 0
    _, findings = pkg_instance.check()
    assert set(by_path(findings)) == {str(LIB / "data.txt")}


def test_auto_accept_package_changes(pkg_instance: Instance, debs: dict[str, Path]) -> None:
    pkg_instance.write(auto_accept_package_changes=True)
    dpkg("-i", debs["3.0"])
    r = pkg_instance.run("files", "check")
    assert r.rc == 1 and "accepted into baseline version 2" in r.out
    assert pkg_instance.check()[0] == 0
    assert pkg_instance.run("files", "versions", "--json").json_lines()[-1]["note"] == (
        "auto-accept package upgrades"
    )


def test_package_check_can_be_switched_off(pkg_instance: Instance, debs: dict[str, Path]) -> None:
    pkg_instance.write(package_check=False)
    dpkg("-i", debs["2.0"])
    _, findings = pkg_instance.check()
    assert by_path(findings)[str(LIB / "tool")]["classification"] == "modified"
    assert by_path(findings)[str(LIB / "tool")]["severity"] == "high"


def test_the_manifest_follows_the_database(tmp_path: Path) -> None:
    """A long-running daemon asks after several upgrades: each answer is today's database."""
    from stockade.sensors.files.dpkg import DpkgManifest

    info = tmp_path / "info"
    info.mkdir()
    (tmp_path / "status").write_bytes(b"")

    def install(md5: str) -> None:  # as dpkg does: a new file renamed into place
        (info / "p.md5sums.new").write_text(f"{md5}  usr/lib/p/tool\n")
        os.replace(info / "p.md5sums.new", info / "p.md5sums")

    install("a" * 32)
    m = DpkgManifest(tmp_path)
    first = m.owner(b"/usr/lib/p/tool")
    assert first is not None and first.md5 == "a" * 32
    install("b" * 32)
    again = m.owner(b"/usr/lib/p/tool")
    assert again is not None and again.md5 == "b" * 32
    (info / "p.md5sums").unlink()
    assert m.owner(b"/usr/lib/p/tool") is None


def test_dpkg_busy_sees_the_lock_without_taking_it(tmp_path: Path) -> None:
    from stockade.sensors.files.dpkg import dpkg_busy

    assert not dpkg_busy(tmp_path)  # no lock file at all
    with dpkg_lock_held(tmp_path):
        assert dpkg_busy(tmp_path)
        assert dpkg_busy(tmp_path)  # asking twice takes nothing
    assert not dpkg_busy(tmp_path)
