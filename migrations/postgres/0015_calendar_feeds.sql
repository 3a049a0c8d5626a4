-- A staff member's secret calendar feed: the token is kept only as its hash; a new one
-- replaces the old, and deleting the row revokes it.
create table calendar_feeds (
    user_id text primary key references users(id),
    token_hash bytea not null unique,
    created_at timestamptz not null
);
