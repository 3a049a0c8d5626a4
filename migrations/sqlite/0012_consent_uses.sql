-- Planned publicity or research uses of a person's data (a name engraved or published, a story
-- told, records given to a study). The validity rules check each against the consents; a
-- withdrawal of the consent cancels the planned uses it covered. The description is sealed.

create table consent_uses (
    id text primary key,
    case_id text not null references cases(id),
    kind text not null check (kind in ('publicity', 'research')),
    subject text not null,
    planned_on text not null,
    status text not null check (status in ('planned', 'cancelled')),
    reason text,
    sealed blob not null,
    created_by text not null references users(id),
    created_at text not null
);
create index consent_uses_case on consent_uses(case_id, id);
