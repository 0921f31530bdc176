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

-- What operators tell on the status pages: a notice for everyone (no customer) or for one
-- customer's page, shown from `starts_at` until `ends_at` (none: until ended).
CREATE TABLE status_notices (
    id BIGSERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    customer TEXT,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- The tokens of customers' own status pages, kept as their SHA-256 only.
CREATE TABLE status_tokens (
    token_sha256 TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Customers an incident affects besides its own (a parent check's outage reaches the
-- customers behind it), comma-separated, sorted; each is told like the incident's own.
ALTER TABLE incidents ADD COLUMN affected TEXT NOT NULL DEFAULT '';

-- Rounds of scheduled test notifications written to the outbox (one per period).
CREATE TABLE selftest_rounds (
    round BIGINT PRIMARY KEY,
    at BIGINT NOT NULL
);

-- Each vantage point's latest result per check, shared by collectors on one PostgreSQL
-- database so that each decides on every agent's results, not only on its own agents'.
CREATE TABLE check_results (
    check_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    at BIGINT NOT NULL,
    error TEXT,
    PRIMARY KEY (check_id, agent)
);
