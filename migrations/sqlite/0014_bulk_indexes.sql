-- Indexes dropped for a bulk materialisation, with the statement that makes each again. The
-- drop and this row are one transaction, and so are the rebuild and the row's removal, so an
-- index lost to a crash mid-pass is rebuilt at the next start.
create table bulk_dropped_indexes (
    name text primary key,
    sql text not null
);
