"""Every attack the issue lists is reported, with the attributes that changed, old → new."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from tests.conftest import Instance, by_path, need_root, need_tool


def changed(instance: Instance, path: Path) -> dict:
    rc, findings = instance.check()
    assert rc == 1, findings
    f = by_path(findings)[str(path)]
    return f


def test_unchanged_tree_reports_nothing(watched: Instance) -> None:
    rc, findings = watched.check()
    assert rc == 0
    assert [f for f in findings if "change" in f] == []


def test_same_size_content_with_mtime_put_back(watched: Instance, tree: Path) -> None:
    target = tree / "bin" / "ls"
    st = target.stat()
    data = target.read_bytes()
    target.write_bytes(data[:-4] + b"EVIL")  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # touch -r
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    f = changed(watched, target)
    assert f["change"] == "changed"
    assert "sha256" in f["attributes"]
    assert f["attributes"]["sha256"]["old"] != f["attributes"]["sha256"]["new"]
    assert "size" not in f["attributes"] and "mtime" not in f["attributes"]


def test_permission_change(watched: Instance, tree: Path) -> None:
    target = tree / "bin" / "ps"
    target.chmod(0o777)
    f = changed(watched, target)
    assert f["attributes"]["perms"] == {"old": "0755", "new": "0777"}


def test_setuid_bit_is_critical(watched: Instance, tree: Path) -> None:
    target = tree / "bin" / "bash"
    target.chmod(0o4755)
    f = changed(watched, target)
    assert f["attributes"]["perms"] == {"old": "0755", "new": "4755"}
    assert f["severity"] == "critical"


def test_setgid_bit_is_critical(watched: Instance, tree: Path) -> None:
    target = tree / "bin" / "bash"
    target.chmod(0o2755)
    f = changed(watched, target)
    assert f["attributes"]["perms"]["new"] == "2755"
    assert f["severity"] == "critical"


def test_new_setuid_file_is_critical(watched: Instance, tree: Path) -> None:
    dropped = tree / "lib" / ".hidden"
    dropped.write_bytes(b"rootshell")
    dropped.chmod(0o4755)
    _, findings = watched.check()
    f = by_path(findings)[str(dropped)]
    assert f["change"] == "added" and f["severity"] == "critical"


def test_replaced_by_symlink(watched: Instance, tree: Path) -> None:
    target = tree / "bin" / "ps"
    target.unlink()
    os.symlink("/tmp/evil", target)
    f = changed(watched, target)
    assert f["attributes"]["type"] == {"old": "file", "new": "symlink"}
    assert f["attributes"]["link"] == {"old": None, "new": "/tmp/evil"}
    assert f["attributes"]["sha256"]["new"] is None


def test_replaced_by_hard_link_to_another_file(watched: Instance, tree: Path) -> None:
    target = tree / "bin" / "ps"
    target.unlink()
    os.link(tree / "bin" / "bash", target)
    rc, findings = watched.check()
    assert rc == 1
    f = by_path(findings)[str(target)]
    assert {"inode", "nlink", "sha256"} <= set(f["attributes"])
    # the other name of the file shows its link count going up
    assert by_path(findings)[str(tree / "bin" / "bash")]["attributes"]["nlink"] == {
        "old": 1,
        "new": 2,
    }


def test_new_file_dropped(watched: Instance, tree: Path) -> None:
    dropped = tree / "lib" / "deep" / "backdoor.so"
    dropped.write_bytes(b"evil")
    rc, findings = watched.check()
    f = by_path(findings)[str(dropped)]
    assert rc == 1 and f["change"] == "added"
    assert f["new"]["sha256"] == hashlib.sha256(b"evil").hexdigest()


def test_file_deleted(watched: Instance, tree: Path) -> None:
    target = tree / "lib" / "libc.so"
    target.unlink()
    rc, findings = watched.check()
    f = by_path(findings)[str(target)]
    assert rc == 1 and f["change"] == "removed"
    assert f["old"]["type"] == "file"


def test_folder_deleted_reports_every_entry(watched: Instance, tree: Path) -> None:
    shutil.rmtree(tree / "lib" / "deep")
    _, findings = watched.check()
    removed = {f["path"] for f in findings if f.get("change") == "removed"}
    assert removed == {str(tree / "lib" / "deep"), str(tree / "lib" / "deep" / "mod.ko")}


def test_owner_change(watched: Instance, tree: Path) -> None:
    need_root()
    target = tree / "bin" / "ls"
    os.chown(target, 1234, 5678)
    f = changed(watched, target)
    assert f["attributes"]["uid"] == {"old": 0, "new": 1234}
    assert f["attributes"]["gid"] == {"old": 0, "new": 5678}


def test_symlink_target_change(watched: Instance, tree: Path) -> None:
    link = tree / "bin" / "dir"
    link.unlink()
    os.symlink("ps", link)
    f = changed(watched, link)
    assert f["attributes"]["link"] == {"old": "ls", "new": "ps"}


def test_extended_attribute_added(watched: Instance, tree: Path) -> None:
    target = tree / "bin" / "ls"
    os.setxattr(target, "user.stockade-test", b"hidden")
    f = changed(watched, target)
    assert f["attributes"]["xattrs"] == {"old": {}, "new": {"user.stockade-test": "hidden"}}


def test_posix_acl_added(watched: Instance, tree: Path, sh) -> None:
    need_tool("setfacl")
    target = tree / "bin" / "ls"
    sh("setfacl", "-m", "u:4242:rwx", target)
    f = changed(watched, target)
    assert f["attributes"]["acl"]["old"] == ""
    assert "u:4242:rwx" in f["attributes"]["acl"]["new"]


def test_file_capability_added_is_critical(watched: Instance, tree: Path, sh) -> None:
    need_root()
    need_tool("setcap")
    target = tree / "bin" / "ps"
    sh("setcap", "cap_net_raw+ep", target)
    f = changed(watched, target)
    assert "security.capability" in f["attributes"]["xattrs"]["new"]
    assert f["severity"] == "critical"


def test_attack_shown_in_human_output(watched: Instance, tree: Path) -> None:
    target = tree / "bin" / "ps"
    target.chmod(0o4755)
    r = watched.run("files", "check")
    assert r.rc == 1
    assert str(target) in r.out
    assert "perms" in r.out and "-rwxr-xr-x (0755)" in r.out and "-rwsr-xr-x (4755)" in r.out
    assert "→" in r.out
    assert "1 changed, 0 added, 0 removed" in r.out
