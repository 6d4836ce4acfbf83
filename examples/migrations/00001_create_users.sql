-- +switchback expand
-- The starting point: users confirm their email, and the time they did is
-- all the application stores.

-- +goose Up
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    email_confirmed_at TIMESTAMP NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- +goose Down
DROP TABLE users;
