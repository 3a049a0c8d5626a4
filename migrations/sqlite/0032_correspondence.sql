-- Letters between donor families (or marrow donors) and recipients (or patients), relayed by
-- coordinators with what identifies held back.
--
-- First, a consent of kind `correspondence`. SQLite cannot change a check constraint in place,
-- so the consents table is rebuilt under the new one, inside the migration's transaction, as
-- 0030 rebuilt contacts: its rows are kept aside, the table is dropped and made again with the
-- same columns, and the rows come back unchanged (content hashes included, so `audit verify`
-- still matches them). Reviews, signed forms and withdrawals name consents by id: the foreign
-- keys are deferred to the commit, by which time every consent they name is back (the commit
-- fails, and nothing changes, if one were not). Dropping the table drops its indexes and its
-- two immutability triggers (an implicit delete fires no trigger); all are made again.
pragma defer_foreign_keys = on;

create temp table consents_before_0032 as select * from consents;

drop table consents;

create table consents (
    id text primary key,
    case_id text not null references cases(id),
    kind text not null check (kind in ('registry', 'donation', 'body_donation', 'contact', 'publicity', 'research', 'correspondence')),
    subject text not null,
    given_by text not null,
    method text not null check (method in ('written', 'verbal', 'electronic')),
    document_id text not null,
    document_sha256 text not null,
    signed_at text not null,
    expires_at text,
    withdraws text references consents(id),
    sealed blob not null,
    created_by text not null references users(id),
    created_at text not null,
    content_hash blob not null
);

insert into consents (id, case_id, kind, subject, given_by, method, document_id,
                      document_sha256, signed_at, expires_at, withdraws, sealed, created_by,
                      created_at, content_hash)
select id, case_id, kind, subject, given_by, method, document_id,
       document_sha256, signed_at, expires_at, withdraws, sealed, created_by,
       created_at, content_hash
from temp.consents_before_0032;

drop table temp.consents_before_0032;

create index consents_case on consents(case_id, id);
create unique index consents_withdraws on consents(withdraws);

create trigger consents_no_update before update on consents
begin
    select raise(abort, 'consent records are immutable: record a withdrawal instead');
end;

create trigger consents_no_delete before delete on consents
begin
    select raise(abort, 'consent records are immutable: record a withdrawal instead');
end;

-- Correspondents: the other side of a case's letters, known to the family only by a
-- pseudonymous label ("受者 A"). The transplant centre's or registry's reference identifies the
-- recipient: sealed under the case key, shown to staff only. The recipient side's consent to
-- correspondence is recorded by date (the centre or registry holds the form); a withdrawal date
-- stops every release.
create table correspondents (
    id text primary key,
    case_id text not null references cases(id),
    label text not null,
    role text not null check (role in ('recipient', 'patient')),
    reference blob,
    consented_on text,
    consent_withdrawn_on text,
    created_by text not null references users(id),
    created_at text not null,
    updated_at text not null,
    unique (case_id, label)
);
create index correspondents_case on correspondents(case_id, id);

-- Letters. Metadata in the clear (direction, dates, status, who reviewed and released, which
-- donor-side consent covered the release) so that queues and the ethics reviewers' oversight
-- need no key; the original and the redacted text are sealed under the case key. `author` is
-- the family side's writer of a letter to the recipient, `addressee` the family side's reader
-- of one from the recipient: `donor` or a contact id.
create table correspondence_letters (
    id text primary key,
    case_id text not null references cases(id),
    correspondent_id text not null references correspondents(id),
    direction text not null check (direction in ('to_recipient', 'to_family')),
    author text,
    addressee text,
    received_on text not null,
    original blob not null,
    redacted blob,
    status text not null check (status in ('received', 'redacted', 'released', 'withheld')),
    withheld_reason text check (withheld_reason in ('identifying', 'distressing', 'no_consent',
        'declined', 'other')),
    reviewed_by text references users(id),
    reviewed_at text,
    released_by text references users(id),
    released_at text,
    consent_id text references consents(id),
    created_by text not null references users(id),
    created_at text not null,
    updated_at text not null,
    check ((direction = 'to_recipient' and author is not null and addressee is null)
        or (direction = 'to_family' and addressee is not null and author is null))
);
create index correspondence_letters_case on correspondence_letters(case_id, id);
create index correspondence_letters_status on correspondence_letters(status, id);
