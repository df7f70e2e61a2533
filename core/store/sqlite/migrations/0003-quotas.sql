-- Schema version 3: quota balances (core/quota.ts; docs/quotas.md).
-- Applied after 0002 in the same transaction as any migration before it (sqlite/schema.ts).

-- One row per account (a key id; a regenerated key spends its predecessor's): the units left
-- and the start of the period they belong to (0 for a balance that never refills). A key with
-- no row has its terms' initial balance.
CREATE TABLE quotas (
  account TEXT PRIMARY KEY NOT NULL,
  balance INTEGER NOT NULL,
  period INTEGER NOT NULL
) WITHOUT ROWID;
