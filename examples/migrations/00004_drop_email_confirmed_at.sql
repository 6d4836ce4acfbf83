-- +switchback contract
-- +switchback snapshot users
-- Contract: drop the old column once no query has used it for 30 days.
-- `switchback migrate lint --usage usage.log` proves that from the query
-- log. The snapshot keeps its values: after `down`, restore them with
-- `switchback migrate snapshot restore 4`.

-- +goose Up
ALTER TABLE users DROP COLUMN email_confirmed_at;

-- +goose Down
ALTER TABLE users ADD COLUMN email_confirmed_at TIMESTAMP NULL;
