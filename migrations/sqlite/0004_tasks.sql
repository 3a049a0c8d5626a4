-- Visits, calls and outreach tasks. Outcome and note are sealed under the case key.

create table tasks (
    id text primary key,
    case_id text not null references cases(id),
    kind text not null check (kind in ('visit', 'call', 'outreach')),
    due_at text not null,
    assignee_id text references users(id),
    contact_id text references contacts(id),
    template text,
    status text not null check (status in ('scheduled', 'done', 'cancelled')),
    details blob,
    created_by text not null references users(id),
    created_at text not null,
    updated_at text not null,
    completed_at text,
    completed_by text references users(id)
);
create index tasks_assignee on tasks(assignee_id, due_at, id);
create index tasks_case on tasks(case_id, due_at, id);
create index tasks_due on tasks(status, due_at, id);
