-- +switchback contract
-- +switchback snapshot orders
-- +goose Up
ALTER TABLE orders DROP COLUMN total;
-- +goose Down
ALTER TABLE orders ADD COLUMN total INTEGER NOT NULL DEFAULT 0;
