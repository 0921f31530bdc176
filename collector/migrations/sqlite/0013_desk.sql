-- An incident the desk takes by hand (a problem phoned in): its category and the caller's
-- ticket reference. NULL for detected incidents.
ALTER TABLE incidents ADD COLUMN category TEXT;
ALTER TABLE incidents ADD COLUMN ticket TEXT;
-- An incident merged into another is resolved and names the one that carries on.
ALTER TABLE incidents ADD COLUMN merged_into BIGINT;
-- Merging and splitting move alerts between incidents.
CREATE INDEX incident_alerts_incident ON incident_alerts (incident_id, at);

-- Hand-over notes between shifts, newest read first.
CREATE TABLE shift_log (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL
);
