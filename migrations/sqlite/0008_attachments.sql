-- Signed consent forms: the file lives outside the database, sealed under the case key with the
-- STREAM construction; this row says what and where.

create table consent_attachments (
    consent_id text primary key references consents(id),
    case_id text not null references cases(id),
    media_type text not null,
    size integer not null,
    sealed_sha256 text not null,
    uploaded_by text not null references users(id),
    uploaded_at text not null
);
create index consent_attachments_case on consent_attachments(case_id);
