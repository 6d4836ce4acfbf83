-- +switchback expand
-- The table the release drill's expand migration changes: the drill's
-- own, so it never touches an application's tables.

-- +goose Up
CREATE TABLE drill_orders (
    id INTEGER PRIMARY KEY,
    item VARCHAR(100) NOT NULL,
    quantity INTEGER NOT NULL
);

-- +goose Down
DROP TABLE drill_orders;
