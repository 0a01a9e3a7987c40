-- Version 4: when each operator token was made (GET /v1/tokens lists it); 0 for
-- the tokens made before.
ALTER TABLE operator_tokens ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
