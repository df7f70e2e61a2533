-- Schema version 2: alerts and their deliveries (core/alerts.ts; docs/architecture.md, "Stores").
-- Applied after 0001 in the same transaction as any migration before it (sqlite/schema.ts).

-- Keys that may expire, in the order the expiring-key scan reads them (expires_at, then id).
-- Revoked keys are left out: nobody is warned about a key that no longer works.
CREATE INDEX keys_expiring ON keys (expires_at, id) WHERE expires_at IS NOT NULL AND revoked_at IS NULL;

-- Alerts, listed newest first (created_at, then id) overall, within a tenant, for one key or of
-- one type. `dedup` is the deduplication key (a key, a type and a window): an alert is stored
-- once per dedup key, and the key goes with its alert when alerts are pruned.
CREATE TABLE alerts (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  dedup TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  tenant TEXT,
  key_id TEXT,
  alert TEXT NOT NULL
);
CREATE INDEX alerts_created ON alerts (created_at, id);
CREATE INDEX alerts_tenant_created ON alerts (tenant, created_at, id);
CREATE INDEX alerts_key_created ON alerts (key_id, created_at, id) WHERE key_id IS NOT NULL;
CREATE INDEX alerts_type_created ON alerts (type, created_at, id);

-- One alert on its way to one destination. `attempts` is JSON (oldest first); `next_at` is when
-- a pending delivery is next tried, null once delivered or failed.
CREATE TABLE deliveries (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  alert_id TEXT NOT NULL,
  target TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts TEXT NOT NULL,
  next_at INTEGER,
  created_at INTEGER NOT NULL
);
CREATE INDEX deliveries_alert ON deliveries (alert_id, seq);
CREATE INDEX deliveries_due ON deliveries (state, next_at, id);
