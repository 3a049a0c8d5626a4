-- Foundation: keyring, accounts, cases, contacts, blind indexes.
-- Personal values live only in the sealed bytea columns (XChaCha20-Poly1305 under the case key).

create table meta (
    key text primary key,
    value text not null
);

create table keyring (
    purpose text not null check (purpose in ('data', 'index')),
    version bigint not null,
    created_at timestamptz not null,
    retired_at timestamptz,
    sealed bytea,
    recipients text not null,
    primary key (purpose, version)
);

create table users (
    id text primary key,
    username text not null unique,
    display_name text not null,
    role text not null check (role in ('admin', 'supervisor', 'coordinator', 'ethics_reviewer', 'volunteer', 'family')),
    region text,
    password_hash text,
    disabled boolean not null default false,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create table api_tokens (
    token_hash bytea primary key,
    user_id text not null references users(id),
    created_at timestamptz not null,
    expires_at timestamptz not null
);
create index api_tokens_user on api_tokens(user_id);

create table setup_tokens (
    token_hash bytea primary key,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    used_at timestamptz
);

create table cases (
    id text primary key,
    program text not null check (program in ('marrow', 'organ', 'body')),
    region text not null,
    status text not null check (status in ('open', 'closed', 'erased')),
    created_by text not null references users(id),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    donor bytea not null,
    donation bytea not null,
    notes bytea
);
create index cases_region on cases(region, id);

create table case_keys (
    case_id text primary key references cases(id),
    key_version bigint not null,
    wrapped bytea not null
);
create index case_keys_version on case_keys(key_version);

create table case_assignments (
    case_id text not null references cases(id),
    user_id text not null references users(id),
    kind text not null check (kind in ('primary', 'team')),
    assigned_at timestamptz not null,
    primary key (case_id, user_id)
);
create index case_assignments_user on case_assignments(user_id, case_id);

create table case_search (
    term bytea not null,
    case_id text not null references cases(id),
    source text not null,
    primary key (term, case_id, source)
);
create index case_search_case on case_search(case_id, source);

create table contacts (
    id text primary key,
    case_id text not null references cases(id),
    relationship text not null check (relationship in ('spouse', 'parent', 'child', 'sibling', 'other')),
    language text not null,
    timezone text not null,
    preferred_channel text not null check (preferred_channel in ('email', 'sms', 'letter', 'portal')),
    opted_out boolean not null default false,
    do_not_contact_until date,
    details bytea not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);
create index contacts_case on contacts(case_id, id);
