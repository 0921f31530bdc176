-- Flood control. A silence or an exclusion (decree art. 9: announcements held for the digest
-- instead of sent at once).
ALTER TABLE silences ADD COLUMN kind TEXT NOT NULL DEFAULT 'silence';

-- Announcements held for a receiver's digest (an exclusion, a limit reached, the SMS cap),
-- until a digest takes them (digest: the timeline entry that made it).
CREATE TABLE digest_items (
    id BIGSERIAL PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    cause BIGINT NOT NULL,
    kind TEXT NOT NULL,
    receiver TEXT NOT NULL,
    customer TEXT,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    digest BIGINT
);

CREATE INDEX digest_items_pending ON digest_items (receiver, digest, id);
