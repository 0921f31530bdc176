-- Operator call tasks: a call a person at the desk must make (art. 7 "par téléphone"), with
-- the number, what to say, and by when; made by a route whose receiver's calls are made by
-- the desk. One per outbox delivery.
CREATE TABLE call_tasks (
    id INTEGER PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    outbox_id BIGINT NOT NULL,
    receiver TEXT NOT NULL,
    number TEXT NOT NULL,
    contact TEXT,
    script TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    -- open, done (someone was reached), overdue (the deadline passed unrecorded; escalated)
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    answered_by TEXT,
    outcome TEXT,
    updated_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX call_tasks_outbox ON call_tasks (outbox_id);
CREATE INDEX call_tasks_state ON call_tasks (state, due_at);
