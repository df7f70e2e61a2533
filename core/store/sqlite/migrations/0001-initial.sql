-- Keygate's embedded store, schema version 1 (core/store/sqlite-store.ts; docs/architecture.md,
-- "Stores"). Applied whole, in one transaction, by core/store/sqlite/schema.ts.
--
-- Records are kept as JSON (`record`) beside the columns that lookups, filters, sorts and the
-- scheduler need. Times are epoch milliseconds.

-- Keys. `hash` is the lookup id; the plaintext key is never stored. Usage counters and the last
-- use belong to the traffic, so a configuration write leaves them alone (they are not in
-- `record`). `name_folded` is the name as JavaScript lower-cases it, for the name search.
-- `due_at` is when the key's next scheduled transition falls (core/record.ts, nextDueAt).
CREATE TABLE keys (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  hash TEXT NOT NULL UNIQUE,
  version INTEGER NOT NULL,
  tenant TEXT,
  environment TEXT NOT NULL,
  application TEXT,
  name TEXT NOT NULL,
  name_folded TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  not_before INTEGER,
  revoked_at INTEGER,
  grace_ends_at INTEGER,
  suspended INTEGER NOT NULL,
  due_at INTEGER,
  total_requests INTEGER NOT NULL DEFAULT 0,
  error_count INTEGER NOT NULL DEFAULT 0,
  last_used_at INTEGER,
  record TEXT NOT NULL
);
-- The admin list's sorts (with the id as tie-breaker, as its keyset cursors are), unscoped and
-- within a tenant, and its filters.
CREATE INDEX keys_created ON keys (created_at, id);
CREATE INDEX keys_tenant_created ON keys (tenant, created_at, id);
CREATE INDEX keys_last_used ON keys (coalesce(last_used_at, -1), id);
CREATE INDEX keys_tenant_last_used ON keys (tenant, coalesce(last_used_at, -1), id);
CREATE INDEX keys_name ON keys (name, id);
CREATE INDEX keys_tenant_name ON keys (tenant, name, id);
CREATE INDEX keys_environment ON keys (environment, created_at, id);
CREATE INDEX keys_application ON keys (application);
-- Status is computed at the time asked (revoked, expired, suspended, pending, active); these
-- find the keys that may be in each status but the common one, active.
CREATE INDEX keys_revoked ON keys (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX keys_grace ON keys (grace_ends_at) WHERE grace_ends_at IS NOT NULL;
CREATE INDEX keys_expires ON keys (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX keys_suspended ON keys (suspended) WHERE suspended = 1;
CREATE INDEX keys_not_before ON keys (not_before) WHERE not_before IS NOT NULL;
CREATE INDEX keys_due ON keys (due_at) WHERE due_at IS NOT NULL;

-- Keys by scope, for the admin list's scope filter.
CREATE TABLE key_scopes (
  scope TEXT NOT NULL,
  key_seq INTEGER NOT NULL,
  PRIMARY KEY (scope, key_seq)
) WITHOUT ROWID;
CREATE INDEX key_scopes_key ON key_scopes (key_seq);

-- Substring search on names: trigrams of the folded name, kept by the triggers below.
CREATE VIRTUAL TABLE keys_names USING fts5 (
  name_folded, content = 'keys', content_rowid = 'seq', tokenize = 'trigram case_sensitive 1'
);
CREATE TRIGGER keys_names_insert AFTER INSERT ON keys BEGIN
  INSERT INTO keys_names (rowid, name_folded) VALUES (new.seq, new.name_folded);
END;
CREATE TRIGGER keys_names_update AFTER UPDATE OF name_folded ON keys BEGIN
  INSERT INTO keys_names (keys_names, rowid, name_folded) VALUES ('delete', old.seq, old.name_folded);
  INSERT INTO keys_names (rowid, name_folded) VALUES (new.seq, new.name_folded);
END;
CREATE TRIGGER keys_names_delete AFTER DELETE ON keys BEGIN
  INSERT INTO keys_names (keys_names, rowid, name_folded) VALUES ('delete', old.seq, old.name_folded);
END;

CREATE TABLE apps (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  version INTEGER NOT NULL,
  tenant TEXT,
  name_folded TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  suspended INTEGER NOT NULL,
  record TEXT NOT NULL
);
CREATE INDEX apps_created ON apps (created_at, id);
CREATE INDEX apps_tenant_created ON apps (tenant, created_at, id);

-- The audit log, appended to and listed newest first.
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  time INTEGER NOT NULL,
  tenant TEXT,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target_id TEXT NOT NULL,
  entry TEXT NOT NULL
);
CREATE INDEX audit_time ON audit (time, id);
CREATE INDEX audit_tenant_time ON audit (tenant, time, id);
CREATE INDEX audit_target_time ON audit (target_id, time, id);
CREATE INDEX audit_actor_time ON audit (actor, time, id);

-- Keys' lifecycle events (timelines), oldest first.
CREATE TABLE events (
  seq INTEGER PRIMARY KEY,
  key_id TEXT NOT NULL,
  event TEXT NOT NULL
);
CREATE INDEX events_key ON events (key_id, seq);

-- Usage aggregates: one row per bucket (scope, granularity m or d, start) with the end of its
-- retention, and one per field of a bucket (core/usage-agg.ts names the fields).
CREATE TABLE usage_buckets (
  scope TEXT NOT NULL,
  gran TEXT NOT NULL,
  start INTEGER NOT NULL,
  expires INTEGER NOT NULL,
  PRIMARY KEY (scope, gran, start)
) WITHOUT ROWID;
CREATE INDEX usage_buckets_expires ON usage_buckets (expires);
CREATE TABLE usage_fields (
  scope TEXT NOT NULL,
  gran TEXT NOT NULL,
  start INTEGER NOT NULL,
  field TEXT NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY (scope, gran, start, field)
) WITHOUT ROWID;

-- The most recent requests answered with an error, in the order they were kept.
CREATE TABLE usage_errors (
  seq INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  key_id TEXT,
  tenant TEXT,
  sample TEXT NOT NULL
);
CREATE INDEX usage_errors_time ON usage_errors (time, seq);

-- Ids of usage batches applied, so that a batch sent twice is counted once.
CREATE TABLE usage_batches (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE
);

-- Named leases (the scheduler runs in one process at a time).
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  until INTEGER NOT NULL
) WITHOUT ROWID;

-- Cache invalidation between the processes that share the database (core/store/sqlite/changes.ts):
-- every commit appends the lookup hashes it changed; every process that caches keys is a member
-- and records the last change it has applied.
CREATE TABLE changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  hash TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE TABLE members (
  instance TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  expires INTEGER NOT NULL
) WITHOUT ROWID;
