-- Uptime. Heartbeats: push health checks that jobs and services ping (healthchecks.io's ping API).
-- A heartbeat is up, new (never pinged) or down; late pings, a failure or a non-zero exit
-- status put it down, the next success brings it up. outages numbers the outages: with the
-- uuid, the current one's number is the id of the alert that opens its incident (once).
CREATE TABLE heartbeats (
    uuid TEXT PRIMARY KEY,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    customer TEXT,
    period_ms BIGINT,
    schedule TEXT,
    tz TEXT NOT NULL,
    grace_ms BIGINT NOT NULL,
    severity TEXT NOT NULL,
    danger BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    last_ping_at BIGINT,
    last_start_at BIGINT,
    last_start_rid TEXT,
    last_duration_ms BIGINT,
    down_since BIGINT,
    down_reason TEXT,
    pings BIGINT NOT NULL,
    outages BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX heartbeats_slug ON heartbeats (slug);
-- The latest pings of each heartbeat (older ones are pruned), with the run's output.
CREATE TABLE heartbeat_pings (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    exit_status BIGINT,
    rid TEXT,
    duration_ms BIGINT,
    user_agent TEXT,
    body TEXT NOT NULL
);
CREATE INDEX heartbeat_pings_uuid ON heartbeat_pings (uuid, id);
-- Agents as their reports describe them. Their liveness is a heartbeat each (slug
-- agent.{id}) pinged by the reports, so a silent agent opens an incident like a silent job.
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    host TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    interval_ms BIGINT NOT NULL,
    spool_batches BIGINT NOT NULL,
    spool_bytes BIGINT NOT NULL,
    events_acked BIGINT NOT NULL,
    events_per_second REAL NOT NULL
);
-- Uptime checks made through the API (the configuration's are not stored), as sent.
CREATE TABLE checks (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- Each check's state by quorum, since when, and its outages so far (the current one's
-- number names the alert of its incident).
CREATE TABLE check_states (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    since BIGINT,
    outages BIGINT NOT NULL,
    down_since BIGINT
);
-- Each change of a check's state, for its availability (the last 90 days are kept).
CREATE TABLE check_transitions (
    id INTEGER PRIMARY KEY,
    check_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX check_transitions_check ON check_transitions (check_id, at);
