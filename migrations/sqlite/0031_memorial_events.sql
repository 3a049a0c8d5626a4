-- Memorial events (Qingming remembrance, the memorial wall, a ceremony): what, when and where,
-- for one region. None of it is personal, so it is kept in the clear.
create table memorial_events (
    id text primary key,
    region text not null,
    kind text not null check (kind in ('qingming', 'memorial_wall', 'ceremony', 'other')),
    title text not null,
    program text check (program in ('marrow', 'organ', 'body')),
    starts_at text not null,
    place text not null,
    details text,
    reply_by text,
    reminder_days integer not null check (reminder_days between 0 and 30),
    status text not null check (status in ('planned', 'cancelled')),
    created_by text not null references users(id),
    created_at text not null,
    updated_by text references users(id),
    updated_at text not null
);
create index memorial_events_region on memorial_events(region, starts_at, id);

-- One family's (or marrow donor's) invitation to an event. The invitation and the reminder are
-- outreach tasks, so the send-time gate (consent, pause, opt-out, the family's cap) decides
-- whether each message goes. The family's needs (a wheelchair, transport) are sealed under the
-- case key; the reply and how many are coming are in the clear, for the head count.
create table memorial_invitations (
    id text primary key,
    event_id text not null references memorial_events(id),
    case_id text not null references cases(id),
    invitation_task_id text references tasks(id),
    reminder_task_id text references tasks(id),
    reply text check (reply in ('coming', 'not_coming')),
    party_size integer check (party_size between 1 and 20),
    needs blob,
    replied_at text,
    replied_by text references users(id),
    created_by text not null references users(id),
    created_at text not null,
    unique (event_id, case_id)
);
create index memorial_invitations_case on memorial_invitations(case_id, id);

-- Donors put forward for an event's published list or engraving. Being on this list publishes
-- nothing by itself: a name is shown or exported only while a publicity consent about the donor
-- is in force, checked each time the list is read.
create table memorial_names (
    event_id text not null references memorial_events(id),
    case_id text not null references cases(id),
    added_by text not null references users(id),
    added_at text not null,
    primary key (event_id, case_id)
);
create index memorial_names_case on memorial_names(case_id);
