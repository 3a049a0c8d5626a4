-- The access generation: a counter that every change to what a case view reads moves
-- (accounts, API tokens, cases, case keys, assignments, contacts), whichever process makes it
-- (the server, another instance on the same file, the command line). A server that answers a
-- case view from reads cached in memory records the view only if the counter is still the one
-- it read them at (`Store::append_reads` with `only_at`), in the same statement as the audit
-- entry; otherwise it reads again. So a disabled account, a revoked token or a removed
-- assignment takes effect on the next request, as without the cache.
create table access_generation (
    id integer primary key check (id = 1),
    n integer not null
);
insert into access_generation (id, n) values (1, 0);

create trigger users_i_moves_generation after insert on users
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger users_u_moves_generation after update on users
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger users_d_moves_generation after delete on users
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger api_tokens_i_moves_generation after insert on api_tokens
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger api_tokens_u_moves_generation after update on api_tokens
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger api_tokens_d_moves_generation after delete on api_tokens
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger cases_i_moves_generation after insert on cases
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger cases_u_moves_generation after update on cases
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger cases_d_moves_generation after delete on cases
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger case_keys_i_moves_generation after insert on case_keys
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger case_keys_u_moves_generation after update on case_keys
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger case_keys_d_moves_generation after delete on case_keys
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger case_assignments_i_moves_generation after insert on case_assignments
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger case_assignments_u_moves_generation after update on case_assignments
begin
    update access_generation set n = n + 1 where id = 1;
end;

create trigger case_assignments_d_moves_generation after delete on case_assignments
begin
    update access_generation set n = n + 1 where id = 1;
end;

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
