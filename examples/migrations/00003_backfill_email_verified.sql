-- +switchback expand
-- +switchback snapshot users
-- Expand, step 2: backfill the new column from the old one. A data
-- migration: the users rows are copied before it runs, so
-- `switchback migrate snapshot restore 3` puts them back as they were.
-- Then deploy code that reads email_verified and no longer touches
-- email_confirmed_at.

-- +goose Up
UPDATE users SET email_verified = TRUE WHERE email_confirmed_at IS NOT NULL;

-- +goose Down
-- The schema is unchanged; the rows as they were come back with
-- `switchback migrate snapshot restore 3`.
UPDATE users SET email_verified = FALSE;
