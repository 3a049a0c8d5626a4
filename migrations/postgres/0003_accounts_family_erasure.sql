-- TOTP, family accounts linked to their contact, invitations, erasure requests, browser sessions.

alter table users add column totp_secret bytea;
alter table users add column totp_enabled_at timestamptz;
alter table users add column totp_last_step bigint not null default 0;
alter table users add column contact_id text references contacts(id);
create unique index users_contact on users(contact_id);

create table invites (
    token_hash bytea primary key,
    contact_id text not null references contacts(id),
    created_by text not null references users(id),
    created_at timestamptz not null,
    expires_at timestamptz not null,
    used_at timestamptz
);
create index invites_contact on invites(contact_id);

create table erasure_requests (
    id text primary key,
    case_id text not null references cases(id),
    requested_by text not null references users(id),
    requested_at timestamptz not null,
    status text not null check (status in ('pending', 'approved', 'rejected')),
    decided_by text references users(id),
    decided_at timestamptz
);
create index erasure_requests_status on erasure_requests(status, id);

create table sessions (
    id_hash bytea primary key,
    user_id text not null references users(id),
    csrf text not null,
    created_at timestamptz not null,
    last_seen_at timestamptz not null,
    expires_at timestamptz not null
);
create index sessions_user on sessions(user_id);
