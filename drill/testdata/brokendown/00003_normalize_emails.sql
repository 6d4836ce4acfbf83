-- +switchback expand
-- +switchback snapshot drill_accounts
-- The drill's data migration: it lowers every email, which no down can
-- undo, so only `switchback migrate snapshot restore 3` brings the rows
-- back as they were; the drill's checksum proves it did.

-- +goose Up
UPDATE drill_accounts SET email = LOWER(email);
UPDATE drill_accounts SET email_verified = TRUE WHERE confirmed = 1;

-- +goose Down
UPDATE drill_accounts SET email_verified = FALSE;
