-- Who a lead is, where known (issue 14: the seed's typed events carry `client_id`, phone and
-- name). Filled by the CRM text log when Follow Up Boss finds the person by phone
-- (`client_id` = its person id, `name` = its name); NULL until then. Alerts about the lead
-- carry both (src/channels/identity.rs). Same columns as migrations/postgres/0097.
ALTER TABLE leads ADD COLUMN client_id TEXT;
ALTER TABLE leads ADD COLUMN name TEXT;
