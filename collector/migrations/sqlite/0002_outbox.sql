-- Notifications waiting to be sent, being sent, sent or given up: one row per message of an
-- announcement, written in the transaction of the incident change that causes it.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    -- The timeline entry of the change announced: the rows of one announcement share it.
    cause BIGINT NOT NULL,
    kind TEXT NOT NULL,
    receiver TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    -- Unguessable: names this delivery in the gateway's status callback.
    token TEXT NOT NULL,
    -- 0 at once (voice, SMS, webhook); 1 after the calls of the same cause ended (e-mail).
    stage BIGINT NOT NULL,
    -- pending, started, sent, failed
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    not_before BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_error TEXT
);

CREATE INDEX outbox_due ON outbox (state, not_before);
CREATE INDEX outbox_incident ON outbox (incident_id, id);
CREATE INDEX outbox_cause ON outbox (cause, stage);
CREATE UNIQUE INDEX outbox_token ON outbox (token);
