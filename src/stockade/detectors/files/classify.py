"""Decide how serious a file change is, and whether a package upgrade explains it.

A changed file whose new content matches the MD5 that dpkg recorded for its package, with no
change of type, permissions, owner or extended attributes, was changed by a package upgrade:
low severity, and acceptable automatically. A file a package shipped whose content disagrees
with the package is critical: that is what a trojaned binary looks like. Configuration files
(dpkg's conffiles) are edited by administrators, so a mismatch there keeps the rule's severity.
Gaining setuid, setgid or file capabilities raises a change to the setuid severity.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from stockade.detectors.files.compare import Delta, setuid
from stockade.model import Severity
from stockade.sensors.files.dpkg import Owner

#: A change of any of these is never explained by content from a package.
_NOT_CONTENT = frozenset({"type", "perms", "uid", "gid", "link", "dev", "xattrs", "acl", "selinux"})
_CONTENT = frozenset({"sha256", "sha512", "blake3", "size"})

PACKAGE_UPGRADE = "package-upgrade"
PACKAGE_MISMATCH = "package-mismatch"
CONFFILE_MODIFIED = "conffile-modified"
MODIFIED = "modified"
ADDED = "added"
REMOVED = "removed"


class Verdict(NamedTuple):
    severity: Severity
    classification: str
    package: str | None
    reason: str


def privileged(entry: dict[str, Any] | None) -> bool:
    """Whether an entry is a setuid/setgid file or carries file capabilities."""
    if entry is None or setuid(entry):
        return entry is not None
    return "security.capability" in (entry.get("xattrs") or {})


def content_changed(delta: Delta) -> bool:
    return delta.change == "added" or bool(delta.names & _CONTENT)


def classify(
    delta: Delta,
    rule_severity: Severity,
    setuid_severity: Severity,
    owner: Owner | None = None,
    md5: str | None = None,
) -> Verdict:
    """The verdict on one delta; ``owner`` and ``md5`` come from dpkg and the file's content."""
    severity = rule_severity
    package = owner.package if owner else None
    if delta.change == "removed":
        verdict = Verdict(severity, REMOVED, package, "removed")
    elif owner is not None and md5 is not None and md5 == owner.md5:
        if delta.change == "added" or not (delta.names & _NOT_CONTENT):
            verdict = Verdict(
                Severity.LOW, PACKAGE_UPGRADE, package, f"content matches package {owner.package}"
            )
        else:
            names = ", ".join(sorted(delta.names & _NOT_CONTENT))
            verdict = Verdict(
                severity,
                MODIFIED,
                package,
                f"content matches package {owner.package}, but {names} changed",
            )
    elif owner is not None and md5 is not None and content_changed(delta):
        if owner.conffile:
            verdict = Verdict(
                severity,
                CONFFILE_MODIFIED,
                package,
                f"configuration file of {owner.package} edited",
            )
        else:
            verdict = Verdict(
                Severity.CRITICAL,
                PACKAGE_MISMATCH,
                package,
                f"content disagrees with package {owner.package}",
            )
    elif delta.change == "added":
        kind = (delta.new or {}).get("type", "entry")
        verdict = Verdict(severity, ADDED, package, f"new {kind}")
    else:
        verdict = Verdict(severity, MODIFIED, package, ", ".join(sorted(delta.names)) + " changed")
    if privileged(delta.new):
        if verdict.classification != PACKAGE_UPGRADE:
            return verdict._replace(
                severity=max(verdict.severity, setuid_severity),
                reason=verdict.reason + "; setuid/setgid or file capabilities",
            )
        if delta.change == "added":  # a package brought a new privileged program
            return verdict._replace(severity=max(verdict.severity, Severity.MEDIUM))
    return verdict
