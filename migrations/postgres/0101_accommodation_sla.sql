-- Issue 15: the `accommodation_request` SLA kind and a deadline set when an SLA opens, as in
-- migrations/sqlite (NULL: started_at + the kind's window).
ALTER TABLE slas DROP CONSTRAINT slas_kind_check;
ALTER TABLE slas ADD CONSTRAINT slas_kind_check CHECK (kind IN ('doc_review',
    'application_decision', 'invoice', 'showing_schedule', 'first_response',
    'accommodation_request'));
ALTER TABLE slas ADD COLUMN due_at TIMESTAMPTZ;
