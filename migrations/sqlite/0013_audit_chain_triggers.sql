-- The database itself keeps the chain linear: an entry must follow the head (next sequence
-- number, previous hash equal to the head's hash), and inserting it moves the head. A batch of
-- entries is then one multi-row insert, committed on its own, and a writer whose idea of the
-- head is stale (another process appended) is refused rather than forking the chain.
create trigger audit_log_follows_head before insert on audit_log
begin
    select raise(abort, 'audit chain: the entry does not follow the head')
    where new.seq is not (select seq + 1 from audit_head where id = 1)
       or new.prev_hash is not (select hash from audit_head where id = 1);
end;

create trigger audit_log_moves_head after insert on audit_log
begin
    update audit_head set seq = new.seq, hash = new.hash where id = 1;
end;
