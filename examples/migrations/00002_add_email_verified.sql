-- +switchback expand
-- Expand, step 1: add the new column beside the old one. It has a default,
-- so the code running now, which knows nothing of it, keeps inserting
-- rows. Deploy code that writes both columns after this.

-- +goose Up
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE users DROP COLUMN email_verified;
