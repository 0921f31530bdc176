-- Alerts read from watched CAP feeds, each once (its key is `sender,identifier,sent`), and
-- its state as later messages amend it: `active`, `updated` or `cancelled` by `amended_by`.
CREATE TABLE cap_watched (
    key TEXT PRIMARY KEY,
    check_id TEXT NOT NULL,
    identifier TEXT NOT NULL,
    sender TEXT NOT NULL,
    sent TEXT NOT NULL,
    status TEXT NOT NULL,
    msg_type TEXT NOT NULL,
    event TEXT,
    severity TEXT,
    headline TEXT,
    area TEXT,
    state TEXT NOT NULL,
    amended_by TEXT,
    seen_at BIGINT NOT NULL
);
CREATE INDEX cap_watched_seen ON cap_watched (seen_at);

-- Each check state transition is also an event in the index (`event.kind: state`): those not
-- yet indexed are found here, indexed, then marked (existing ones are indexed at upgrade).
ALTER TABLE check_transitions ADD COLUMN indexed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX check_transitions_unindexed ON check_transitions (indexed, id);
