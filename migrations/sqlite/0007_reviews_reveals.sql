-- Ethics reviewers' reviews of consent records, and revealed identities with their reasons.
-- Notes and reasons are sealed under the case key.

create table consent_reviews (
    id text primary key,
    consent_id text not null references consents(id),
    reviewer_id text not null references users(id),
    finding text not null check (finding in ('verified', 'concern')),
    note blob,
    reviewed_at text not null
);
create index consent_reviews_consent on consent_reviews(consent_id, id);

create table reveals (
    id text primary key,
    case_id text not null references cases(id),
    user_id text not null references users(id),
    reason blob not null,
    revealed_at text not null
);
create index reveals_case on reveals(case_id, id);
