-- An ethics reviewer's word on a break-glass use: acknowledged, or a concern with what it is.
-- A grant may be reviewed more than once (a concern later acknowledged); the newest counts.
-- The note is sealed with the case's key, like the grant's reason.
create table break_glass_reviews (
    id text primary key,
    grant_id text not null references break_glass(id),
    reviewer_id text not null references users(id),
    decision text not null check (decision in ('acknowledged', 'concern')),
    note blob,
    reviewed_at text not null
);
create index break_glass_reviews_grant on break_glass_reviews(grant_id, reviewed_at);
