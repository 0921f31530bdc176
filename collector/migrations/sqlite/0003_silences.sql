-- Silences: matchers on incident labels and a time window in which matching incidents are
-- not announced (they are still opened, grouped and shown). Retractions are never silenced.
CREATE TABLE silences (
    id INTEGER PRIMARY KEY,
    -- A JSON array of matchers, as in the routing tree.
    matchers TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX silences_ends ON silences (ends_at);
