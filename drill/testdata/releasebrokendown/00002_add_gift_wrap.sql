-- +switchback expand
-- Broken on purpose: the down leaves the column the up added, so the
-- release drill must fail and show the column in its schema diff.

-- +goose Up
ALTER TABLE drill_orders ADD COLUMN gift_wrap BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
UPDATE drill_orders SET gift_wrap = FALSE;
