-- Issue 15 (operations). An audit record names the W3C trace id of its
-- request when the request was traced ('' otherwise).

-- +goose Up
ALTER TABLE audit ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audit DROP COLUMN trace_id;
