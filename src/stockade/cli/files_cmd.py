"""``stockade files init | check | accept | versions | diff | restore | show | key``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING, Any

from stockade.cli.main import make_context
from stockade.cli.output import human_bytes, json_line, progress, table
from stockade.durations import iso
from stockade.errors import UsageError

if TYPE_CHECKING:
    from stockade.parts.files.report import Report
    from stockade.parts.files.service import FilesService


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "files",
        help="file integrity: baseline, check, accept",
        parents=[common],
        description="File integrity monitoring with a signed, versioned baseline.",
    )
    s = p.add_subparsers(dest="files_command", metavar="ACTION", parser_class=type(p))
    s.required = True

    def add(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        a: argparse.ArgumentParser = s.add_parser(
            name, help=help, description=help, parents=[common]
        )
        a.set_defaults(handler=handler)
        return a

    i = add("init", cmd_init, "build the baseline (of the policy, or of PATHs merged into it)")
    i.add_argument("paths", nargs="*", metavar="PATH")
    i.add_argument(
        "--ask-passphrase", action="store_true", help="protect a new key with a passphrase"
    )
    i.add_argument("--json", action="store_true", help="print a JSON summary")

    c = add("check", cmd_check, "compare the files with the baseline (exit 1 when changed)")
    c.add_argument("paths", nargs="*", metavar="PATH")
    c.add_argument("--json", action="store_true", help="one JSON object per line (see README)")
    c.add_argument("--all", action="store_true", help="list package upgrades one by one too")
    c.add_argument("--no-record", action="store_true", help="do not store alerts")

    a = add(
        "accept", cmd_accept, "take the current state of PATHs (default: all) into the baseline"
    )
    a.add_argument("paths", nargs="*", metavar="PATH")
    a.add_argument("--packages", action="store_true", help="accept only package upgrades")
    a.add_argument("--ask-passphrase", action="store_true")
    a.add_argument("--json", action="store_true")

    v = add("versions", cmd_versions, "list the baseline's versions")
    v.add_argument("--json", action="store_true")

    d = add("diff", cmd_diff, "show what changed between two baseline versions")
    d.add_argument("old", type=int, metavar="V1")
    d.add_argument("new", type=int, nargs="?", metavar="V2", help="default: the current version")
    d.add_argument("--json", action="store_true")

    r = add("restore", cmd_restore, "make version V the current baseline again (as a new version)")
    r.add_argument("version", type=int, metavar="V")
    r.add_argument("--ask-passphrase", action="store_true")

    w = add("show", cmd_show, "print what the baseline holds for PATH")
    w.add_argument("path", metavar="PATH")
    w.add_argument("--version", type=int, dest="at_version", metavar="V")
    w.add_argument("--json", action="store_true")

    k = add("key", cmd_key, "print the baseline key's fingerprint (to pin it in the configuration)")
    k.add_argument("--json", action="store_true")


def _service(args: argparse.Namespace) -> FilesService:
    from stockade.parts.files.service import FilesService

    ctx = make_context(args)
    passphrase = None
    if getattr(args, "ask_passphrase", False):
        passphrase = getpass.getpass("baseline key passphrase: ").encode()
    return FilesService(ctx, ctx.open_store(), passphrase=passphrase)


def _paths(args: argparse.Namespace) -> list[bytes] | None:
    from stockade.sensors.files.policy import parse_cli_paths

    return parse_cli_paths(args.paths) or None


def cmd_init(args: argparse.Namespace) -> int:
    from stockade.parts.files.report import show_path

    svc = _service(args)
    paths = _paths(args)
    with progress("baseline", not args.json) as bar:
        res = svc.init(paths, bar)
    if args.json:
        json_line(
            {
                "version": res.version,
                "entries": res.entries,
                "seconds": round(res.elapsed, 3),
                "key_id": res.key_id,
                "key_created": res.key_created,
                "notes": [n.to_json() for n in res.notes],
            }
        )
        return 0
    for n in res.notes:
        print(f"note: {show_path(n.path)}: {n.message}")
    if res.key_created:
        print(f"created signing key {svc.keys.private_path} (fingerprint {res.key_id})")
    for r in res.dropped_roots:
        print(f"note: {show_path(r)} was in the baseline but is not in the policy: dropped")
    print(
        f"baseline version {res.version}: {res.entries} entries in {res.elapsed:.1f} s, "
        f"signed by key {res.key_id}"
    )
    if res.previous is not None:
        print(
            f"it replaces version {res.previous} ({res.absorbed} entries differ); "
            f"`stockade files restore {res.previous}` undoes this"
        )
    return 0


def _print_report(report: Report, show_all: bool) -> None:
    from stockade.cli import files_format as fmt
    from stockade.detectors.files.classify import PACKAGE_UPGRADE
    from stockade.parts.files.report import show_path

    upgrades = 0
    for f in report.findings:
        if f.verdict.classification == PACKAGE_UPGRADE and not show_all:
            upgrades += 1
            continue
        print("\n".join(fmt.finding_lines(f)))
    for n in report.notes:
        print(f"note: {show_path(n.path)}: {n.message}" if n.path else f"note: {n.message}")
    c = report.counts
    line = f"{c['changed']} changed, {c['added']} added, {c['removed']} removed"
    if report.package_upgrades:
        extra = "" if show_all else "; --all lists them"
        line += f" ({len(report.package_upgrades)} files changed by package upgrades{extra})"
    print(line)
    if report.accepted_version is not None:
        print(f"package upgrades accepted into baseline version {report.accepted_version}")
    print(
        f"{report.entries} entries checked, {human_bytes(report.hashed_bytes)} hashed in "
        f"{report.elapsed:.1f} s against baseline version {report.version}"
    )


def cmd_check(args: argparse.Namespace) -> int:
    svc = _service(args)
    with progress("checking", not args.json) as bar:
        report = svc.check(_paths(args), bar, record=not args.no_record)
    if args.json:
        for f in report.findings:
            json_line(f.to_json())
        for n in report.notes:
            json_line(n.to_json())
    else:
        _print_report(report, args.all)
    return 1 if report.findings else 0


def cmd_accept(args: argparse.Namespace) -> int:
    from stockade.parts.files.report import show_path

    svc = _service(args)
    with progress("accepting", not args.json) as bar:
        findings, version = svc.accept(_paths(args), only_packages=args.packages, progress=bar)
    if args.json:
        json_line({"version": version, "accepted": [f.to_json() for f in findings]})
        return 0
    if version is None:
        print("nothing to accept: the files match the baseline")
        return 0
    for f in findings:
        print(f"accepted {f.delta.change} {show_path(f.path)}")
    print(f"baseline version {version}: {len(findings)} change(s) accepted")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    svc = _service(args)
    versions = svc.versions()
    if args.json:
        for v in versions:
            json_line(
                {
                    "version": v.version,
                    "created": iso(v.created),
                    "entries": v.entries,
                    "note": v.note,
                    "key_id": v.key_id,
                    "digest": v.digest,
                }
            )
        return 0
    if not versions:
        print("no file baseline yet; build one with `stockade files init`")
        return 0
    table(
        [[str(v.version), iso(v.created), str(v.entries), v.note] for v in versions],
        ["VERSION", "CREATED", "ENTRIES", "NOTE"],
    )
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from stockade.cli import files_format as fmt
    from stockade.parts.files.report import json_path, show_path

    svc = _service(args)
    deltas = svc.diff(args.old, args.new)
    for d in deltas:
        if args.json:
            json_line(
                {
                    "path": json_path(d.path),
                    "change": d.change,
                    "attributes": {a.name: {"old": a.old, "new": a.new} for a in d.attributes},
                }
            )
        else:
            print(f"{d.change.upper():8} {show_path(d.path)}")
            for line in fmt.attribute_lines(d):
                print(line)
    if not args.json:
        print(
            f"{len(deltas)} difference(s) between version {args.old} and "
            f"{'the current version' if args.new is None else 'version ' + str(args.new)}"
        )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    svc = _service(args)
    version = svc.restore(args.version)
    print(f"baseline version {version} restores version {args.version}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from stockade.cli import files_format as fmt
    from stockade.parts.files.report import json_path, show_path
    from stockade.sensors.files.policy import parse_cli_paths

    svc = _service(args)
    (path,) = parse_cli_paths([args.path])
    base, text = svc.show(path, args.at_version)
    if text is None:
        raise UsageError(f"{show_path(path)} is not in baseline version {base.version.version}")
    entry = json.loads(text)
    if args.json:
        json_line({"path": json_path(path), "version": base.version.version, "entry": entry})
        return 0
    print(f"{show_path(path)} in baseline version {base.version.version}:")
    print("\n".join(fmt.entry_lines(entry)))
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    svc = _service(args)
    v = svc.keys.verifier()
    if args.json:
        json_line({"public_key": str(v.path), "fingerprint": v.key_id})
    else:
        print(f"{v.path}: fingerprint {v.key_id}")
        print(f'pin it with: public_key_fingerprint = "{v.key_id}" in the [files] section')
    sys.stdout.flush()
    return 0
