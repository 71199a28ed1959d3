"""The configuration's shape, defaults and value checks (pydantic models).

Every section forbids unknown keys, so a typo is reported instead of silently ignored. Values
that need more than a type check (attribute expressions, regular expressions, paths) are
validated here too, so that ``stockade config check`` catches them before anything runs.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from stockade.durations import format_duration, parse_duration
from stockade.model import Severity
from stockade.sensors.files.attributes import BUILTIN_SETS, parse_attribute_expression


def _duration(value: object) -> float:
    if not isinstance(value, str | int | float):
        raise ValueError("expected a duration such as 30s, 10m, 1h or 2d")
    return parse_duration(value)


def _severity(value: object) -> str:
    if isinstance(value, Severity):
        return str(value)
    if not isinstance(value, str):
        raise ValueError("expected a severity: info, low, medium, high or critical")
    return str(Severity.parse(value))


Duration = Annotated[float, BeforeValidator(_duration), PlainSerializer(format_duration)]
SeverityName = Annotated[str, BeforeValidator(_severity)]


def _plain_name(v: str, what: str) -> str:
    """A name of a jail, scan group or channel: letters, digits, '-', '_' and '.'."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", v):
        raise ValueError(f"{what} name {v!r}: use letters, digits, '-', '_' and '.'")
    return v


def _names_once(names: list[str], key: str, what: str) -> None:
    """Raise on the first name used twice: ``@KEY[i].name: WHAT 'x' is defined twice``."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(f"@{key}[{i}].name: {what} {name!r} is defined twice")
        seen.add(name)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True)


class StockadeSection(_Section):
    host: str = Field("", description="name used in alerts; empty = the machine's host name")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class StoreSection(_Section):
    backend: Literal["sqlite"] = Field("sqlite", description="only sqlite for now")
    path: str = Field("", description="database file; empty = <state-dir>/stockade.db")


class FileRule(_Section):
    path: str
    attributes: str = Field("binaries", description="a set name or an expression: config-mtime")
    severity: SeverityName = "high"
    recurse: bool | int = Field(True, description="true, false, or the depth below path")
    exclude: list[str] = Field(default_factory=list, description="glob patterns")
    exclude_regex: list[str] = Field(default_factory=list)

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r} is not an absolute path; write it starting with /")
        return v

    @field_validator("recurse")
    @classmethod
    def _depth(cls, v: bool | int) -> bool | int:
        if not isinstance(v, bool) and v < 0:
            raise ValueError("recurse must be true, false or a depth of 0 or more")
        return v

    @field_validator("exclude_regex")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        return _check_regexes(v)


def _check_regexes(patterns: list[str]) -> list[str]:
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"bad regular expression {p!r}: {e}") from None
    return patterns


def _default_rules() -> list[FileRule]:
    binaries = ["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/libexec"]
    binaries += ["/usr/local/bin", "/usr/local/sbin", "/lib", "/lib64", "/boot"]
    rules = [FileRule(path=p, attributes="binaries", severity="high") for p in binaries]
    rules.append(
        FileRule(
            path="/etc",
            attributes="config",
            severity="medium",
            exclude=["/etc/mtab", "/etc/adjtime", "/etc/.pwd.lock", "*.swp", "*~"],
        )
    )
    rules.append(FileRule(path="/root/.ssh", attributes="config", severity="high"))
    rules.append(FileRule(path="/var/spool/cron", attributes="config", severity="high"))
    return rules


class FilesSection(_Section):
    enabled: bool = True
    rules: list[FileRule] = Field(default_factory=_default_rules)
    attribute_sets: dict[str, str] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list, description="globs excluded under every rule")
    exclude_regex: list[str] = Field(default_factory=list)
    one_filesystem: bool = Field(True, description="do not descend into other mounted filesystems")
    setuid_severity: SeverityName = "critical"
    workers: int = Field(0, ge=0, description="hashing processes; 0 = one per CPU")
    schedule: Duration = Field(86400.0, description="interval of the full check in `run`")
    check_on_start: bool = True
    realtime: bool = True
    debounce: Duration = 0.2
    package_check: bool = Field(True, description="classify changes against dpkg's manifests")
    auto_accept_package_changes: bool = False
    package_settle: Duration = Field(
        30.0, description="in `run`, accept package upgrades once none arrived for this long"
    )
    dpkg_admindir: str = "/var/lib/dpkg"
    signing_key: str = Field("", description="private key; empty = <state-dir>/keys/files.key")
    passphrase_file: str = Field("", description="file holding the signing key's passphrase")
    public_key_fingerprint: str = Field("", description="pin the verifying key (see files key)")
    keep_versions: int = Field(50, ge=1)

    @field_validator("exclude_regex")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        return _check_regexes(v)

    @field_validator("attribute_sets")
    @classmethod
    def _sets(cls, v: dict[str, str]) -> dict[str, str]:
        known = dict(BUILTIN_SETS)
        for name, expr in v.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"set name {name!r} must be letters, digits and _")
            known[name] = frozenset(parse_attribute_expression(expr, known))
        return v

    @model_validator(mode="after")
    def _unique_rules(self) -> FilesSection:
        seen: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            key = os.path.normpath(rule.path)
            if key in seen:
                raise ValueError(
                    f"@rules[{i}].path: {rule.path} is already watched by rules[{seen[key]}]; "
                    "keep one rule per path"
                )
            seen[key] = i
        return self

    @model_validator(mode="after")
    def _rule_sets(self) -> FilesSection:
        known = dict(BUILTIN_SETS)
        for name, expr in self.attribute_sets.items():
            known[name] = frozenset(parse_attribute_expression(expr, known))
        for i, rule in enumerate(self.rules):
            try:
                parse_attribute_expression(rule.attributes, known)
            except ValueError as e:
                raise ValueError(f"@rules[{i}].attributes: {e}") from None
        return self


def _duration_or_forever(value: object) -> float:
    """A ban time: a duration, or -1 / "-1" / "permanent" for a ban that never ends."""
    if value in (-1, "-1", "permanent", "forever"):
        return -1.0
    return _duration(value)


BanTime = Annotated[
    float,
    BeforeValidator(_duration_or_forever),
    PlainSerializer(lambda v: "permanent" if v < 0 else format_duration(v)),
]


class BantimeIncrement(_Section):
    enabled: bool = False
    factor: float = Field(1.0, gt=0)
    formula: str = Field("", description="fail2ban's formula language; empty = its default")
    multipliers: list[float] = Field(default_factory=list)
    maxtime: Duration = Field(0.0, description="cap; 0 = none")
    rndtime: Duration = 0.0
    overalljails: bool = False

    @field_validator("formula")
    @classmethod
    def _formula(cls, v: str) -> str:
        if v:
            from stockade.detectors.logs.bantime import compile_formula

            compile_formula(v)
        return v


class JailSection(_Section):
    name: str
    enabled: bool = True
    filter: str = Field("", description="a fail2ban filter name, name[options] or file path")
    failregex: list[str] = Field(default_factory=list, description="a filter of its own")
    ignoreregex: list[str] = Field(default_factory=list)
    prefregex: str = ""
    datepattern: str = ""
    maxlines: int = Field(1, ge=1, le=1000)
    logpath: list[str] = Field(default_factory=list)
    journalmatch: list[str] = Field(default_factory=list)
    backend: Literal["auto", "files", "journal"] = "auto"
    maxretry: int = Field(5, ge=1)
    findtime: Duration = 600.0
    bantime: BanTime = 600.0
    ignoreip: list[str] = Field(default_factory=list)
    port: str = Field("", description="ports to block: empty = every port")
    protocol: Literal["tcp", "udp", "all"] = "tcp"
    usedns: Literal["yes", "warn", "no", "raw"] = "no"
    maxmatches: int = Field(0, ge=0, description="matched lines kept per address; 0 = maxretry")
    bantime_increment: BantimeIncrement = Field(default_factory=BantimeIncrement)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _plain_name(v, "jail")

    @field_validator("failregex", "ignoreregex")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        from stockade.detectors.logs.regex import RegexError, compile_regex

        for r in v:
            try:
                compile_regex(r)
            except RegexError as e:
                raise ValueError(str(e)) from None
        return v

    @model_validator(mode="after")
    def _has_filter(self) -> JailSection:
        from stockade.detectors.logs.regex import RegexError, compile_regex, require_id

        if not self.filter and not self.failregex:
            raise ValueError("@filter: a jail needs a filter (a fail2ban filter name) or failregex")
        try:
            pref = compile_regex(self.prefregex) if self.prefregex else None
        except RegexError as e:
            raise ValueError(f"@prefregex: {e}") from None
        for i, r in enumerate(self.failregex):
            try:
                require_id(compile_regex(r), pref)
            except RegexError as e:
                raise ValueError(f"@failregex[{i}]: {e}") from None
        return self


class CommandResponder(_Section):
    ban: list[str] = Field(default_factory=list, description="argument list; <ip> <jail> ...")
    unban: list[str] = Field(default_factory=list)
    timeout: Duration = 10.0


class LogsSection(_Section):
    enabled: bool = True
    fail2ban_dir: str = Field("/etc/fail2ban", description="read its enabled jails; empty = no")
    responder: Literal["nftables", "command", "dry-run"] = "nftables"
    nft_table: str = Field("stockade", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
    nft_command: list[str] = Field(default_factory=lambda: ["nft"])
    command: CommandResponder = Field(default_factory=CommandResponder)
    allowlist: list[str] = Field(default_factory=list, description="never banned, in every jail")
    ignoreself: bool = True
    ipv6_prefix: int = Field(128, ge=48, le=128, description="64 bans a whole /64")
    from_start: bool = Field(False, description="read a log seen for the first time from its start")
    journal_directory: str = Field("", description="read this journal folder; empty = the system's")
    read_compressed: bool = Field(False, description="also read rotated .gz/.bz2/.xz/.zst logs")
    max_line: int = Field(65536, ge=256)
    line_budget: Duration = Field(0.05, description="time a filter may spend on one line")
    jails: list[JailSection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> LogsSection:
        _names_once([x.name for x in self.jails], "jails", "jail")
        return self


class SocketsSection(_Section):
    enabled: bool = True
    schedule: Duration = Field(60.0, description="interval of the listener check in `run`")
    events: bool = Field(
        True, description="also check soon after a program starts or a listener closes (root)"
    )
    event_gap: Duration = Field(2.0, description="least time between two checks events ask for")
    severity: SeverityName = "high"
    ignore: list[str] = Field(
        default_factory=list,
        description="listeners never reported: 'tcp:22', 'udp:*:68', 'program:chronyd'",
    )

    @field_validator("ignore")
    @classmethod
    def _ignore(cls, v: list[str]) -> list[str]:
        from stockade.detectors.sockets.listeners import IgnoreRule
        from stockade.errors import StockadeError

        for text in v:
            try:
                IgnoreRule.parse(text, "listener rule")
            except StockadeError as e:
                raise ValueError(str(e)) from None
        return v


StarttlsProtocol = Literal["smtp", "imap", "pop3", "ftp", "postgres", "ldap"]


def _tcp_ports(ports: list[int]) -> None:
    bad = [p for p in ports if not 0 < p < 65536]
    if bad:
        raise ValueError(f"port {bad[0]}: ports are 1-65535")


class ScanGroup(_Section):
    name: str
    targets: list[str] = Field(description="addresses, CIDR ranges, a-b ranges, host names, @FILE")
    exclude: list[str] = Field(default_factory=list, description="targets left out")
    ports: str = Field("top100", description="TCP ports: 22,80,8000-8100, - (all), top100")
    udp_ports: str = Field("", description="UDP ports (each with its protocol probe); empty = none")
    scan: Literal["auto", "connect", "syn"] = Field("auto", description="auto: SYN when root")
    discovery: Literal["auto", "none"] = Field(
        "auto", description="auto: find live hosts first, as nmap; none: as nmap -Pn"
    )
    banners: bool = Field(True, description="read the banner of every open TCP port")
    tls_ports: list[int] = Field(
        default_factory=lambda: [443, 465, 636, 853, 993, 995, 5061, 8443],
        description="ports whose TLS certificate is recorded",
    )
    starttls_ports: dict[StarttlsProtocol, list[int]] = Field(
        default_factory=dict,
        description="more ports per protocol where its upgrade to TLS is tried, e.g. postgres",
    )
    version_intensity: int = Field(
        7, ge=0, le=9, description="with banners: further version probes of rarity up to this"
    )
    cert_expiry_days: int = Field(14, ge=0, description="alert when a certificate expires sooner")
    traceroute: bool = Field(
        False, description="record the path to each host; alert when it changes"
    )
    key_by_mac: bool = Field(True, description="on the local link, key hosts by MAC address")
    schedule: Duration = Field(3600.0, description="interval between rounds in `run`")
    retries: int = Field(2, ge=0, le=10, description="tries after the first for a silent port")
    rate: int = Field(0, ge=0, description="new probes a second per worker; 0 = no cap")
    severity: SeverityName = "high"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _plain_name(v, "group")

    @field_validator("targets", "exclude")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        from stockade.errors import StockadeError
        from stockade.sensors.scan.targets import parse_spec

        for text in v:
            if text.startswith("@"):
                continue  # a file of targets, read when the group is scanned
            try:
                parse_spec(text)
            except StockadeError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("ports", "udp_ports")
    @classmethod
    def _ports(cls, v: str) -> str:
        from stockade.errors import StockadeError
        from stockade.sensors.scan.ports import parse_ports

        if v.strip():
            try:
                parse_ports(v)
            except StockadeError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("tls_ports")
    @classmethod
    def _tls(cls, v: list[int]) -> list[int]:
        _tcp_ports(v)
        return v

    @field_validator("starttls_ports")
    @classmethod
    def _starttls(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        for ports in v.values():
            _tcp_ports(ports)
        return v


class ScanSection(_Section):
    enabled: bool = Field(True, description="scan the groups on their schedules in `run`")
    workers: int = Field(0, ge=0, le=64, description="scanner processes; 0 = one per CPU")
    groups: list[ScanGroup] = Field(default_factory=list, description="named target groups")

    @model_validator(mode="after")
    def _unique(self) -> ScanSection:
        _names_once([x.name for x in self.groups], "groups", "group")
        return self


PARTS = ("files", "logs", "sockets", "scan", "rootcheck", "packets", "fleet", "web", "notify")


class _Channel(_Section):
    """What every notification channel has: a name, routing, grouping, a rate cap."""

    name: str
    min_severity: SeverityName = Field("medium", description="alerts below are not sent")
    parts: list[str] = Field(default_factory=list, description="only alerts of these; [] = all")
    group_window: Duration = Field(60.0, description="alerts within this time may be grouped")
    group_threshold: int = Field(
        5, ge=0, description="more alerts than this in a window become one summary"
    )
    rate_limit: int = Field(30, ge=0, description="messages per rate_period at most; 0 = no cap")
    rate_period: Duration = 3600.0
    retry_min: Duration = Field(5.0, description="the first retry after a failure")
    retry_max: Duration = Field(3600.0, description="retries back off up to this interval")
    max_attempts: int = Field(
        10, ge=1, description="after this many failures the row is logged as stuck (still kept)"
    )
    timeout: Duration = Field(30.0, description="how long one delivery may take")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _plain_name(v, "channel")

    @field_validator("parts")
    @classmethod
    def _parts(cls, v: list[str]) -> list[str]:
        for p in v:
            if p not in PARTS:
                raise ValueError(f"unknown part {p!r}; use one of {', '.join(PARTS)}")
        return v


def _host_port(v: str, default_port: int | None) -> str:
    from stockade.responders.notify.address import parse_host_port

    parse_host_port(v, default_port)
    return v


class _ClientCert(_Section):
    """A client certificate for mutual TLS, checked when the configuration is loaded."""

    tls_cert: str = Field("", description="mutual TLS: the client certificate chain (PEM)")
    tls_key: str = Field("", description="mutual TLS: the unencrypted private key of tls_cert")

    def _without_tls(self) -> str:
        """Why this channel speaks no TLS (a client certificate is then an error), or ""."""
        return ""

    @model_validator(mode="after")
    def _client_cert(self) -> _ClientCert:
        from stockade.responders.notify.channels.tls import client_cert_problem

        if not self.tls_cert and not self.tls_key:
            return self
        if not self.tls_cert or not self.tls_key:
            given, missing = ("tls_cert", "tls_key") if self.tls_cert else ("tls_key", "tls_cert")
            raise ValueError(f"@{given}: tls_cert and tls_key go together: set {missing} too")
        if why := self._without_tls():
            raise ValueError(f"@tls_cert: a client certificate needs TLS; {why}")
        if problem := client_cert_problem(self.tls_cert, self.tls_key):
            raise ValueError(f"@{problem[0]}: {problem[1]}")
        return self


class SyslogChannel(_Channel, _ClientCert):
    type: Literal["syslog"]
    address: str = Field(description="HOST:PORT of the collector (514 UDP/TCP, 6514 TLS)")
    transport: Literal["udp", "tcp", "tls"] = "udp"
    format: Literal["plain", "json", "cef"] = "plain"
    facility: Literal[
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "authpriv",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ] = "authpriv"
    app_name: str = Field("stockade", pattern=r"^[!-~]{1,48}$")
    ca_file: str = Field("", description="TLS: trust this CA file; empty = the system's")
    server_name: str = Field("", description="TLS: the name in the certificate; empty = HOST")

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return _host_port(v, 514)

    def _without_tls(self) -> str:
        return "" if self.transport == "tls" else 'set transport = "tls"'


#: the port an SMTP server listens on for each ``tls`` mode (465: RFC 8314 submissions)
SMTP_PORTS = {"starttls": 587, "implicit": 465, "none": 25}


class EmailChannel(_Channel):
    type: Literal["email"]
    host: str = Field(description="SMTP server")
    tls: Literal["starttls", "implicit", "none"] = Field(
        "starttls", description="starttls: required upgrade; implicit: TLS from the first byte"
    )
    port: int = Field(587, ge=1, le=65535, description="unset: 587, 465 (implicit) or 25 (none)")
    ca_file: str = Field("", description="trust this CA file; empty = the system's")
    username: str = ""
    password_file: str = Field("", description="file holding the SMTP password")
    sender: str = Field(description="the From address")
    recipients: list[str] = Field(description="the To addresses")

    @model_validator(mode="before")
    @classmethod
    def _starttls(cls, data: object) -> object:
        if isinstance(data, dict) and "starttls" in data:
            instead = 'tls = "none"' if data["starttls"] is False else 'tls = "starttls"'
            raise ValueError(f"@starttls: replaced by tls; write {instead} instead")
        return data

    @model_validator(mode="after")
    def _port(self) -> EmailChannel:
        if "port" not in self.model_fields_set:
            self.port = SMTP_PORTS[self.tls]
        return self

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        return _mail(v)

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one recipient address")
        return [_mail(a) for a in v]


def _mail(v: str) -> str:
    if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", v):
        raise ValueError(f"{v!r} is not a mail address; write user@example.org")
    return v


class WebhookChannel(_Channel, _ClientCert):
    type: Literal["webhook"]
    url: str = Field(description="http:// or https:// URL the JSON is POSTed to")
    style: Literal["json", "slack"] = Field("json", description="slack: Slack/Mattermost payload")
    ca_file: str = Field("", description="trust this CA file; empty = the system's")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        import httpx

        try:
            url = httpx.URL(v)
        except httpx.InvalidURL as e:
            raise ValueError(f"bad URL {v!r}: {e}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"bad URL {v!r}: write http://HOST[:PORT]/PATH or https://...")
        return v

    def _without_tls(self) -> str:
        return "" if self.url.startswith("https:") else "use an https:// URL"


class CommandChannel(_Channel):
    type: Literal["command"]
    command: list[str] = Field(
        description="argument list, no shell; <severity> <part> <kind> <subject> <message> "
        "<count> <host>; the JSON body on standard input"
    )

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str]) -> list[str]:
        from stockade.errors import StockadeError
        from stockade.responders.argv import validate
        from stockade.responders.notify.message import PLACEHOLDERS

        try:
            validate(v, "command", PLACEHOLDERS)
        except StockadeError as e:
            raise ValueError(str(e)) from None
        return v


ChannelConfig = Annotated[
    SyslogChannel | EmailChannel | WebhookChannel | CommandChannel, Field(discriminator="type")
]


class NotifySection(_Section):
    enabled: bool = Field(True, description="send notifications from `run`")
    poll: Duration = Field(1.0, description="how often new alerts and due retries are looked at")
    keep_sent: Duration = Field(7 * 86400.0, description="delivered rows are kept this long")
    channels: list[ChannelConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> NotifySection:
        _names_once([x.name for x in self.channels], "channels", "channel")
        return self


class WebSection(_Section):
    enabled: bool = Field(False, description="also serve the dashboard in `run`")
    listen: str = Field("127.0.0.1:8470", description="ADDR:PORT; [::1]:PORT for IPv6")
    tls_cert: str = Field("", description="certificate chain (PEM); with tls_key: HTTPS")
    tls_key: str = Field("", description="private key of tls_cert (PEM)")
    session_lifetime: Duration = Field(28800.0, description="a login lasts this long")
    login_max_failures: int = Field(5, ge=1, description="failed logins an address may make...")
    login_window: Duration = Field(600.0, description="...within this time before it must wait")
    failed_login_log: str = Field(
        "", description="fail2ban-style log of failed logins; empty = <state-dir>/web-auth.log"
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        from stockade.web.listen import parse_listen

        parse_listen(v)  # raises ValueError with the reason
        return v

    @model_validator(mode="after")
    def _tls(self) -> WebSection:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: set both, or neither")
        return self


class Config(_Section):
    stockade: StockadeSection = Field(default_factory=StockadeSection)
    store: StoreSection = Field(default_factory=StoreSection)
    files: FilesSection = Field(default_factory=FilesSection)
    logs: LogsSection = Field(default_factory=LogsSection)
    sockets: SocketsSection = Field(default_factory=SocketsSection)
    scan: ScanSection = Field(default_factory=ScanSection)
    notify: NotifySection = Field(default_factory=NotifySection)
    web: WebSection = Field(default_factory=WebSection)
