-- The incident queue. IF NOT EXISTS: databases made before migrations were versioned hold
-- these tables already, and this migration adopts them as they are.
CREATE TABLE IF NOT EXISTS incidents (
    id BIGSERIAL PRIMARY KEY,
    dedup_key TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    danger BIGINT NOT NULL,
    customer TEXT,
    group_key TEXT NOT NULL,
    assignee TEXT,
    count BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The storm rule, as a constraint: one active incident per key, across collectors.
CREATE UNIQUE INDEX IF NOT EXISTS incidents_active_key ON incidents (dedup_key)
    WHERE status IN ('open', 'acknowledged');

CREATE INDEX IF NOT EXISTS incidents_last_seen ON incidents (last_seen);

CREATE TABLE IF NOT EXISTS incident_alerts (
    alert_id TEXT PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS incident_timeline (
    id BIGSERIAL PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS incident_timeline_incident ON incident_timeline (incident_id, id);
