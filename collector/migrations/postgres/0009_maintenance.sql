-- Maintenance windows: one-off (with a change ticket) or recurring, for customers (given, or
-- derived from assets). Their incidents are not announced while one is on; the customers
-- are told when it is planned, when it starts and when it ends (the occurrence whose start
-- and end notices went, -1 before the first).
CREATE TABLE maintenance (
    id BIGSERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    ticket TEXT,
    customers TEXT NOT NULL,
    assets TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    every_ms BIGINT,
    until_at BIGINT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started BIGINT NOT NULL,
    ended BIGINT NOT NULL
);
