-- Reference data managed through the API (the configuration file's objects are not here):
-- customers and assets, each kept whole as JSON, and every change of an asset, with who made
-- it, until it is exported to the receiving party.
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE assets (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE INDEX assets_customer ON assets (customer);

CREATE TABLE asset_changes (
    id INTEGER PRIMARY KEY,
    asset_id TEXT NOT NULL,
    -- created, updated, deleted
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    -- the asset after the change; NULL for a deletion
    body TEXT,
    exported_at BIGINT
);

CREATE INDEX asset_changes_exported ON asset_changes (exported_at, id);
CREATE INDEX asset_changes_asset ON asset_changes (asset_id, id);
