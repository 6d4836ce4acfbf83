-- +switchback expand
-- The table the migration drill fills with rows before it changes them.

-- +goose Up
CREATE TABLE drill_accounts (
    id INTEGER PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    plan VARCHAR(20) NOT NULL,
    confirmed INTEGER NOT NULL
);

-- +goose Down
DROP TABLE drill_accounts;
