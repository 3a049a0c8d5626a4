-- Consent records: immutable. Withdrawal is a new record that names the one it withdraws.
-- Witness, scope and reasons are sealed under the case key; the row's content hash enters the
-- audit chain, so an edited row fails `donorcare audit verify`.

create table consents (
    id text primary key,
    case_id text not null references cases(id),
    kind text not null check (kind in ('registry', 'donation', 'body_donation', 'contact', 'publicity', 'research')),
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
