-- A contact may prefer the `wechat` channel. SQLite cannot change a check constraint in place,
-- so the contacts table is rebuilt under the new one, inside the migration's transaction:
-- its rows are kept aside, the table is dropped and made again with the same columns, and the
-- rows come back unchanged. Users, invites and tasks name contacts by id: the foreign keys are
-- deferred to the commit, by which time every contact they name is back (the commit fails,
-- and nothing changes, if one were not). Dropping the table drops its index and its triggers
-- (migration 0017); both are made again.
pragma defer_foreign_keys = on;

create temp table contacts_before_0030 as select * from contacts;

drop table contacts;

create table contacts (
    id text primary key,
    case_id text not null references cases(id),
    relationship text not null check (relationship in ('spouse', 'parent', 'child', 'sibling', 'other')),
    language text not null,
    timezone text not null,
    preferred_channel text not null check (preferred_channel in ('email', 'sms', 'letter', 'portal', 'wechat')),
    opted_out integer not null default 0,
    do_not_contact_until text,
    details blob not null,
    created_at text not null,
    updated_at text not null
);

insert into contacts (id, case_id, relationship, language, timezone, preferred_channel,
                      opted_out, do_not_contact_until, details, created_at, updated_at)
select id, case_id, relationship, language, timezone, preferred_channel,
       opted_out, do_not_contact_until, details, created_at, updated_at
from temp.contacts_before_0030;

drop table temp.contacts_before_0030;

create index contacts_case on contacts(case_id, id);

create trigger contacts_i_moves_generation after insert on contacts
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger contacts_u_moves_generation after update on contacts
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger contacts_d_moves_generation after delete on contacts
begin
    update access_generation set n = n + 1 where id = 1;
end;

-- The rows are the same, but another instance's cached reads of them are not to be trusted
-- across a schema change.
update access_generation set n = n + 1 where id = 1;
