-- The tamper-evident audit log: a hash chain over ids, codes and ciphertext hashes.

create table audit_log (
    seq bigint primary key,
    id text not null unique,
    at timestamptz not null,
    actor_id text,
    actor_role text,
    action text not null,
    target_type text not null,
    target_id text,
    case_id text,
    outcome text not null check (outcome in ('allowed', 'denied')),
    break_glass boolean not null default false,
    reason text,
    content_hash bytea,
    prev_hash bytea not null,
    hash bytea not null
);
create index audit_log_case on audit_log(case_id, seq);
create index audit_log_actor on audit_log(actor_id, seq);

-- The head of the chain; its row lock serialises appends, so the chain stays linear.
create table audit_head (
    id integer primary key check (id = 1),
    seq bigint not null,
    hash bytea not null
);
insert into audit_head (id, seq, hash) values (1, 0, decode(repeat('00', 32), 'hex'));

-- Time-limited access of a coordinator to a case outside their assignment.
create table break_glass (
    id text primary key,
    case_id text not null references cases(id),
    user_id text not null references users(id),
    reason bytea not null,
    granted_at timestamptz not null,
    expires_at timestamptz not null
);
create index break_glass_user on break_glass(user_id, case_id, expires_at);
create index break_glass_case on break_glass(case_id, granted_at);
