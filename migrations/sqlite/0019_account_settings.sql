-- A staff member's own settings for the pages: the language they read.
create table account_settings (
    user_id text primary key references users(id),
    language text not null
);
