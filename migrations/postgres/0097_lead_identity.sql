-- Who a lead is, where known: as in migrations/sqlite/0097 (same columns).
ALTER TABLE leads ADD COLUMN client_id TEXT;
ALTER TABLE leads ADD COLUMN name TEXT;
