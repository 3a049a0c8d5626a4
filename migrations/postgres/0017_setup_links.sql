-- A setup link may belong to an existing account: an admin issues one so that the person sets
-- their own password (a new account, or a password forgotten). Without a user it is the first
-- admin's link.
alter table setup_tokens add column user_id text references users(id);
create index setup_tokens_user on setup_tokens(user_id);
