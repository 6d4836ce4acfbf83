-- +goose Up
CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);
-- +goose Down
DROP TABLE orders;
