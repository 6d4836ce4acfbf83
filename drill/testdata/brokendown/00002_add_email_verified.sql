-- +switchback expand
-- Broken on purpose: the down leaves the column the up added, so the
-- migration drill must fail and show the column in its schema diff.

-- +goose Up
ALTER TABLE drill_accounts ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
UPDATE drill_accounts SET email_verified = FALSE;
