-- +switchback expand
-- The release drill's expand migration: the release's code needs the new
-- column, the previous code ignores it, so the release rollback may roll
-- it down.

-- +goose Up
ALTER TABLE drill_orders ADD COLUMN gift_wrap BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE drill_orders DROP COLUMN gift_wrap;
