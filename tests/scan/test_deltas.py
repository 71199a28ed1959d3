"""Scan deltas: hosts new, down and back, ports, banners, certificates, expiry, paths, MAC keys."""

from __future__ import annotations

from datetime import UTC, datetime

from stockade.detectors.scan import deltas as d
from stockade.sensors.scan.report import Cert, Hop, HostReport, PortReport, Service


def host(
    addr: str, *ports: int, state: str = "up", mac: str | None = None, **kw: object
) -> HostReport:
    return HostReport(
        addr, state=state, mac=mac, ports=[PortReport(p, "tcp", "open") for p in ports], **kw
    )  # type: ignore[arg-type]


def cert(sha: str, until: str = "2027-06-01T00:00:00+00:00") -> Cert:
    return Cert("CN=www", "CN=ca", ["www"], "2026-01-01T00:00:00+00:00", until, sha)


def kinds(base: list[HostReport], cur: list[HostReport]) -> list[tuple[str, str]]:
    return [(x.kind, x.subject) for x in d.compare(d.snapshots(base), d.snapshots(cur))]


def test_same_state_is_no_delta_and_closed_ports_do_not_matter() -> None:
    a = host("10.0.0.2", 22, 80)
    b = host("10.0.0.2", 22, 80)
    b.ports.append(PortReport(81, "tcp", "closed"))
    assert kinds([a], [b]) == []


def test_ports_opened_and_closed() -> None:
    cur = host("10.0.0.2", 22, 443)
    cur.ports.append(PortReport(80, "tcp", "filtered"))
    assert kinds([host("10.0.0.2", 22, 80)], [cur]) == [
        ("port-opened", "10.0.0.2:443/tcp"),
        ("port-closed", "10.0.0.2:80/tcp"),
    ]
    closed = d.compare(d.snapshots([host("10.0.0.2", 22, 80)]), d.snapshots([cur]))[1]
    assert closed.describe() == "port 10.0.0.2:80/tcp is no longer open"


def test_hosts_new_down_back_and_gone() -> None:
    base = [host("10.0.0.2", 22), host("10.0.0.3", state="down"), host("10.0.0.4", 80)]
    cur = [host("10.0.0.2", state="down"), host("10.0.0.3", 25), host("10.0.0.5", 8080)]
    assert kinds(base, cur) == [
        ("host-down", "10.0.0.2"),
        ("host-up", "10.0.0.3"),
        ("host-new", "10.0.0.5"),
        ("host-down", "10.0.0.4"),
    ]
    new = d.compare(d.snapshots(base), d.snapshots(cur))[2]
    assert new.new == "8080/tcp" and "with open ports 8080/tcp" in new.describe()


def test_a_new_host_that_is_down_is_nothing() -> None:
    assert kinds([], [host("10.0.0.9", state="down")]) == []


def test_host_that_moved_on_the_local_link_is_the_same_host() -> None:
    mac = "02:00:00:00:00:01"
    base = [host("10.0.0.2", 22, mac=mac)]
    for cur in (
        [host("10.0.0.7", 22, mac=mac)],
        [host("10.0.0.2", state="down"), host("10.0.0.7", 22, mac=mac)],
    ):
        assert kinds(base, cur) == []
        a, b = d.snapshots(base), d.snapshots(cur)
        # a port change on the moved host is still seen, under its new address
        b["ip:10.0.0.7"].ports.append(PortReport(80, "tcp", "open"))
        assert [(x.kind, x.subject) for x in d.compare(a, b)] == [
            ("port-opened", "10.0.0.7:80/tcp")
        ]
        # keyed by address, the same move is a host gone and a new one
        assert sorted(x.kind for x in d.compare(a, d.snapshots(cur), key_by_mac=False)) == [
            "host-down",
            "host-new",
        ]


def test_banner_and_certificate_changes() -> None:
    a, b = host("10.0.0.2", 22, 443), host("10.0.0.2", 22, 443)
    a.ports[0].banner, b.ports[0].banner = "SSH-2.0-OpenSSH_9.2", "SSH-2.0-OpenSSH_9.9"
    a.ports[1].cert, b.ports[1].cert = cert("aa" * 32), cert("bb" * 32)
    out = d.compare(d.snapshots([a]), d.snapshots([b]))
    assert [(x.kind, x.subject) for x in out] == [
        ("banner-changed", "10.0.0.2:22/tcp"),
        ("cert-changed", "10.0.0.2:443/tcp"),
    ]
    assert "OpenSSH_9.9" in out[0].describe() and "bbbbbbbb" in out[1].describe()
    # a banner not read this time (None) is not a change
    b.ports[0].banner, b.ports[1].cert = None, cert("aa" * 32)
    assert kinds([a], [b]) == []


def test_expiring_certificates() -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    h = host("10.0.0.2", 443, 8443, 9443)
    h.ports[0].cert = cert("aa" * 32, "2026-12-01T00:00:00+00:00")  # 5 days
    h.ports[1].cert = cert("bb" * 32, "2027-12-01T00:00:00+00:00")
    h.ports[2].cert = cert("cc" * 32, "2026-11-01T00:00:00Z")  # expired
    out = d.expiring(d.snapshots([h]), now, 14)
    assert [(x.kind, x.port) for x in out] == [("cert-expiring", 443), ("cert-expiring", 9443)]
    assert "in 5 days" in (out[0].old or "") and "expired" in (out[1].old or "")
    assert d.expiring(d.snapshots([h]), now, 3) == [out[1]]


def test_paths() -> None:
    def path(*hops: str | None) -> list[Hop]:
        return [Hop(i, a, [0.001]) for i, a in enumerate(hops, 1)]

    old = path("10.1.0.1", "10.2.0.1", "10.3.0.2")
    assert not d.path_differs(old, path("10.1.0.1", None, "10.3.0.2"))  # a silent hop
    assert d.path_differs(old, path("10.1.0.1", "10.9.0.1", "10.3.0.2"))
    assert d.path_differs(old, path("10.1.0.1", "10.3.0.2"))
    a, b = (
        host("10.3.0.2", 22, path=old),
        host("10.3.0.2", 22, path=path("10.1.0.1", "10.9.0.1", "10.3.0.2")),
    )
    out = d.compare(d.snapshots([a]), d.snapshots([b]))
    assert [x.kind for x in out] == ["path-changed"]
    assert out[0].describe() == (
        "path to 10.3.0.2 changed: 10.1.0.1 10.2.0.1 10.3.0.2 -> 10.1.0.1 10.9.0.1 10.3.0.2"
    )


def test_addresses_sharing_a_mac_stay_apart() -> None:
    mac = "02:00:00:00:00:01"
    base = [host("10.0.0.2", 22, mac=mac), host("10.0.0.3", 80, mac=mac)]
    assert kinds(base, [host("10.0.0.2", 22, mac=mac), host("10.0.0.3", state="down")]) == [
        ("host-down", "10.0.0.3")
    ]


def test_a_new_version_is_one_version_changed_delta() -> None:
    a, b = host("10.0.0.2", 22, 21, 25), host("10.0.0.2", 22, 21, 25)
    a.ports[0].banner, b.ports[0].banner = "SSH-2.0-OpenSSH_9.2p1", "SSH-2.0-OpenSSH_9.9p1"
    a.ports[0].service = Service("ssh", "OpenSSH", "9.2p1", "protocol 2.0")
    b.ports[0].service = Service("ssh", "OpenSSH", "9.9p1", "protocol 2.0")
    # only the banner changed (the host name in a greeting): a banner change
    a.ports[1].banner, b.ports[1].banner = "220 old.example (vsFTPd 3.0.3)", "220 new.example"
    a.ports[1].service = b.ports[1].service = Service("ftp", "vsftpd", "3.0.3")
    # one scan named the service only (a softmatch): nothing to compare versions with
    a.ports[2].service, b.ports[2].service = Service("smtp"), Service("smtp", "Postfix smtpd")
    out = d.compare(d.snapshots([a]), d.snapshots([b]))
    assert [(x.kind, x.subject) for x in out] == [
        ("version-changed", "10.0.0.2:22/tcp"),
        ("banner-changed", "10.0.0.2:21/tcp"),
    ]
    assert out[0].describe() == (
        "service of 10.0.0.2:22/tcp changed: ssh OpenSSH 9.2p1 (protocol 2.0) -> "
        "ssh OpenSSH 9.9p1 (protocol 2.0)"
    )
    assert d.VERSION_CHANGED in d.KINDS


def test_services_survive_json() -> None:
    p = PortReport(22, "tcp", "open", banner="SSH-2.0-x", service=Service("ssh", "OpenSSH", "9"))
    p.service.cpe = ["cpe:/a:openbsd:openssh:9"]  # type: ignore[union-attr]
    d_json = p.to_json()
    assert d_json["service"] == "ssh" and d_json["cpe"] == ["cpe:/a:openbsd:openssh:9"]
    assert "extrainfo" not in d_json
    assert PortReport.from_json(d_json) == p
    assert PortReport.from_json({"port": 1, "proto": "tcp", "state": "open"}).service is None
