-- Messages that need a person: held (why is recorded), dead (every try failed) or failed (still
-- retrying). Few among many, so their own small index serves the listing of them.
create index outreach_attention on outreach(due_at, id) where status in ('held', 'dead', 'failed');
