-- Care plans, materialised occurrences, the outreach outbox and the family's portal inbox.

create table care_plans (
    program text primary key check (program in ('marrow', 'organ', 'body')),
    version bigint not null,
    rules text not null,
    updated_by text references users(id),
    updated_at timestamptz not null
);

-- A case's schedule: the family's choices, and how far its plan has been materialised.
create table case_schedules (
    case_id text primary key references cases(id),
    mourning_days boolean not null default false,
    skip_festivals text not null default '[]',
    plan_version bigint not null default 0,
    horizon date,
    updated_at timestamptz not null
);
create index case_schedules_horizon on case_schedules(horizon);

-- Tasks made by a plan remember the rule and occurrence: one task per case, rule and occurrence.
alter table tasks add column rule_id text;
alter table tasks add column occurrence text;
alter table tasks add column grace_until timestamptz;
create unique index tasks_occurrence on tasks(case_id, rule_id, occurrence);

-- One row per message: per outreach task and recipient (`donor` or a contact id). Claimed under
-- a lease; the row id is the idempotency key every channel carries.
create table outreach (
    id text primary key,
    task_id text not null references tasks(id),
    case_id text not null references cases(id),
    recipient text not null,
    channel text,
    template text not null,
    status text not null check (status in ('scheduled', 'sent', 'held', 'failed', 'dead', 'cancelled')),
    reason text,
    due_at timestamptz not null,
    grace_until timestamptz not null,
    next_attempt_at timestamptz,
    attempts bigint not null default 0,
    lease_owner text,
    lease_until timestamptz,
    sent_at timestamptz,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    unique (task_id, recipient)
);
create index outreach_next on outreach(next_attempt_at) where next_attempt_at is not null;
create index outreach_case on outreach(case_id, due_at, id);
create index outreach_sent on outreach(case_id, sent_at) where sent_at is not null;

-- The family's inbox: rendered messages, sealed under the case key.
create table portal_messages (
    outreach_id text primary key references outreach(id),
    case_id text not null references cases(id),
    recipient text not null,
    sealed bytea not null,
    created_at timestamptz not null
);
create index portal_messages_recipient on portal_messages(recipient, created_at);
