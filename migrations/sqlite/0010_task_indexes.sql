-- Plan-made tasks have no assignee: index only the tasks that do (a volunteer's visits), so a
-- materialisation pass does not write into this index at all.
drop index tasks_assignee;
create index tasks_assignee on tasks(assignee_id, due_at, id) where assignee_id is not null;
