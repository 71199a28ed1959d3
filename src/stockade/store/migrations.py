"""Schema migrations for the SQLite store; ``PRAGMA user_version`` holds the applied count.

Append new steps; never edit a released one.
"""

MIGRATIONS: list[str] = [
    # 1: events, alerts, versioned baselines, small state
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        host TEXT NOT NULL,
        part TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        severity INTEGER NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX events_time ON events(time);
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        host TEXT NOT NULL,
        part TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        severity INTEGER NOT NULL,
        detail TEXT NOT NULL,
        acknowledged INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX alerts_time ON alerts(time);
    CREATE INDEX alerts_part_time ON alerts(part, time);
    CREATE TABLE baseline_versions (
        part TEXT NOT NULL,
        version INTEGER NOT NULL,
        created REAL NOT NULL,
        note TEXT NOT NULL,
        meta TEXT NOT NULL,
        entries INTEGER NOT NULL,
        digest TEXT NOT NULL,
        signature BLOB NOT NULL,
        key_id TEXT NOT NULL,
        PRIMARY KEY (part, version)
    );
    -- an entry row is valid from version vfrom through vto (NULL: still valid now)
    CREATE TABLE baseline_entries (
        part TEXT NOT NULL,
        key BLOB NOT NULL,
        data TEXT NOT NULL,
        vfrom INTEGER NOT NULL,
        vto INTEGER
    );
    CREATE INDEX baseline_key ON baseline_entries(part, key);
    CREATE TABLE state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: bans (active and past: the history counts repeat offenders)
    """
    CREATE TABLE bans (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        jail TEXT NOT NULL,
        created REAL NOT NULL,
        until REAL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        failures INTEGER NOT NULL,
        matches TEXT NOT NULL,
        lifted REAL,
        lifted_by TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX bans_address ON bans(address);
    CREATE INDEX bans_open ON bans(until) WHERE lifted IS NULL;
    """,
    # 3: stored network scans (one row a round of a scan group; hosts as JSON)
    """
    CREATE TABLE scans (
        id INTEGER PRIMARY KEY,
        grp TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL NOT NULL,
        hosts_up INTEGER NOT NULL,
        hosts_total INTEGER NOT NULL,
        open_ports INTEGER NOT NULL,
        meta TEXT NOT NULL,
        hosts TEXT NOT NULL
    );
    CREATE INDEX scans_grp ON scans(grp, started);
    """,
    # 4: the notification outbox: one row an alert routed to a channel, kept until delivered
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        alert_id INTEGER NOT NULL,
        created REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        sent REAL
    );
    CREATE INDEX outbox_due ON outbox(channel, next_try) WHERE sent IS NULL;
    CREATE INDEX outbox_sent ON outbox(sent) WHERE sent IS NOT NULL;
    """,
    # 5: dashboard users and their server-side sessions (only digests of the session tokens
    # are kept)
    """
    CREATE TABLE web_users (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        created REAL NOT NULL,
        changed REAL NOT NULL
    );
    CREATE TABLE web_sessions (
        digest TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL,
        address TEXT NOT NULL
    );
    CREATE INDEX web_sessions_expires ON web_sessions(expires);
    """,
    # 6: dashboard roles; the users from before roles existed could do everything: admins
    """
    ALTER TABLE web_users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
    """,
]
