-- Staff email addresses (for the coordinators' daily digest) and the digests sent: one per
-- coordinator and day, claimed before sending so several instances send it once.
alter table users add column email text;

create table digests (
    user_id text not null references users(id),
    day date not null,
    sent_at timestamptz not null,
    primary key (user_id, day)
);
