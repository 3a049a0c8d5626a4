-- TOTP, family accounts linked to their contact, invitations, erasure requests, browser sessions.

alter table users add column totp_secret blob;
alter table users add column totp_enabled_at text;
alter table users add column totp_last_step integer not null default 0;
alter table users add column contact_id text references contacts(id);
create unique index users_contact on users(contact_id);

create table invites (
    token_hash blob primary key,
    contact_id text not null references contacts(id),
    created_by text not null references users(id),
    created_at text not null,
    expires_at text not null,
    used_at text
);
create index invites_contact on invites(contact_id);

create table erasure_requests (
    id text primary key,
    case_id text not null references cases(id),
    requested_by text not null references users(id),
    requested_at text not null,
    status text not null check (status in ('pending', 'approved', 'rejected')),
    decided_by text references users(id),
    decided_at text
);
create index erasure_requests_status on erasure_requests(status, id);

create table sessions (
    id_hash blob primary key,
    user_id text not null references users(id),
    csrf text not null,
    created_at text not null,
    last_seen_at text not null,
    expires_at text not null
);
create index sessions_user on sessions(user_id);
