-- Adverse events after a stem-cell collection (marrow cases only): when, what kind, how bad
-- (a CTCAE-like grade 1-5), whether the donation caused it, how it ended, and when the registry
-- was told. The description is health data, sealed with the case's key; the rest is the
-- pseudonymous metadata the registry's report is made of (no names, no ids leave with it).
create table adverse_events (
    id text primary key,
    case_id text not null references cases(id),
    occurred_on date not null,
    category text not null check (category in ('pain', 'fatigue', 'bleeding', 'infection',
        'anaesthesia_reaction', 'allergic', 'other')),
    grade bigint not null check (grade between 1 and 5),
    relation text not null check (relation in ('related', 'possibly', 'unlikely', 'unrelated')),
    outcome text not null check (outcome in ('recovering', 'resolved', 'resolved_with_sequelae',
        'ongoing')),
    reported_on date,
    description bytea,
    created_by text not null references users(id),
    created_at timestamptz not null,
    updated_by text references users(id),
    updated_at timestamptz not null
);
create index adverse_events_case on adverse_events(case_id, id);
create index adverse_events_occurred on adverse_events(occurred_on, id);
