-- CAP 1.2 messages made for incidents, as sent: made once per announcement (every endpoint
-- and every retry gets the same), referenced by later ones (Update, Cancel), in the Atom feed.
CREATE TABLE cap_messages (
    id BIGSERIAL PRIMARY KEY,
    cause BIGINT NOT NULL,
    incident_id BIGINT NOT NULL,
    identifier TEXT NOT NULL,
    sent TEXT NOT NULL,
    msg_type TEXT NOT NULL,
    headline TEXT NOT NULL,
    xml TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX cap_messages_cause ON cap_messages (cause);
CREATE INDEX cap_messages_incident ON cap_messages (incident_id, id);
