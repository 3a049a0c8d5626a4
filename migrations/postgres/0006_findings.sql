-- What the consent validity rules found, for the ethics reviewers' queue. Messages name rules,
-- relationships and record ids, never names.

create table findings (
    id text primary key,
    case_id text not null references cases(id),
    rule text not null,
    consent_key text not null,
    message text not null,
    status text not null check (status in ('open', 'closed')),
    opened_at timestamptz not null,
    updated_at timestamptz not null,
    closed_at timestamptz,
    closed_by text,
    decision text check (decision in ('resolved', 'verified', 'concern')),
    note bytea
);
create unique index findings_open on findings(case_id, rule, consent_key) where status = 'open';
create index findings_status on findings(status, id);
create index findings_case on findings(case_id, id);
