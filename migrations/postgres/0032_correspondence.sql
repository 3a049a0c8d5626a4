-- Letters between donor families (or marrow donors) and recipients (or patients), relayed by
-- coordinators with what identifies held back.
--
-- First, a consent of kind `correspondence`.
alter table consents
    drop constraint consents_kind_check,
    add constraint consents_kind_check
        check (kind in ('registry', 'donation', 'body_donation', 'contact', 'publicity', 'research', 'correspondence'));

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
    reference bytea,
    consented_on date,
    consent_withdrawn_on date,
    created_by text not null references users(id),
    created_at timestamptz not null,
    updated_at timestamptz not null,
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
    received_on date not null,
    original bytea not null,
    redacted bytea,
    status text not null check (status in ('received', 'redacted', 'released', 'withheld')),
    withheld_reason text check (withheld_reason in ('identifying', 'distressing', 'no_consent',
        'declined', 'other')),
    reviewed_by text references users(id),
    reviewed_at timestamptz,
    released_by text references users(id),
    released_at timestamptz,
    consent_id text references consents(id),
    created_by text not null references users(id),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    check ((direction = 'to_recipient' and author is not null and addressee is null)
        or (direction = 'to_family' and addressee is not null and author is null))
);
create index correspondence_letters_case on correspondence_letters(case_id, id);
create index correspondence_letters_status on correspondence_letters(status, id);
