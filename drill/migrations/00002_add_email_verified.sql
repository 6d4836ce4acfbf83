-- +switchback expand
-- The drill's expand migration: a new column beside the old ones.

-- +goose Up
ALTER TABLE drill_accounts ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE drill_accounts DROP COLUMN email_verified;
