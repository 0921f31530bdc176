-- The assets an incident concerns (comma-separated ids, sorted): found from what its alerts
-- were seen on; routes match them (`asset=`), announcements name them.
ALTER TABLE incidents ADD COLUMN assets TEXT NOT NULL DEFAULT '';
-- Its rules' tags, the same way (`tags=attack.t1110`).
ALTER TABLE incidents ADD COLUMN tags TEXT NOT NULL DEFAULT '';

-- The customers a maintenance window names whole (JSON list): their incidents are quiet while
-- it is on; a window naming assets quiets only the incidents concerning those assets. NULL
-- (windows made before): all its customers are whole, as they were.
ALTER TABLE maintenance ADD COLUMN whole TEXT;

-- Routes' groups (`group_by`): a first announcement of an incident without danger waits in
-- its group (`grp`, the group's key; `grp_labels`, its labels as JSON) and goes with the
-- others of the group, after `wait_ms` (group_wait) for a new group, else `every_ms`
-- (group_interval) after the group last went (`notify_groups`). NULL `grp`: held by flood
-- control for the receiver's digest.
ALTER TABLE digest_items ADD COLUMN grp TEXT;
ALTER TABLE digest_items ADD COLUMN grp_labels TEXT;
ALTER TABLE digest_items ADD COLUMN wait_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE digest_items ADD COLUMN every_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX digest_items_grp ON digest_items (grp, receiver) WHERE digest IS NULL;
CREATE TABLE notify_groups (
    receiver TEXT NOT NULL,
    grp TEXT NOT NULL,
    flushed_at BIGINT NOT NULL,
    PRIMARY KEY (receiver, grp)
);
