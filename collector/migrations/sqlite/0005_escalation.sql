-- Escalation: an incident's acknowledge-by and resolve-by deadlines, the level of the on-call
-- rota it has reached, and when each deadline was breached (NULL: not breached).
ALTER TABLE incidents ADD COLUMN ack_by BIGINT;
ALTER TABLE incidents ADD COLUMN resolve_by BIGINT;
ALTER TABLE incidents ADD COLUMN level BIGINT NOT NULL DEFAULT 1;
ALTER TABLE incidents ADD COLUMN ack_breached_at BIGINT;
ALTER TABLE incidents ADD COLUMN resolve_breached_at BIGINT;

CREATE INDEX incidents_ack_by ON incidents (ack_by);
CREATE INDEX incidents_resolve_by ON incidents (resolve_by);

-- Temporary changes of who is on call ("I take tonight"): one level of one rota, a window.
CREATE TABLE oncall_overrides (
    id INTEGER PRIMARY KEY,
    rota TEXT NOT NULL,
    level BIGINT NOT NULL,
    person TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX oncall_overrides_ends ON oncall_overrides (ends_at);
