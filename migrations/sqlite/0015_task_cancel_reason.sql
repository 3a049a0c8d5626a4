-- Why a task was cancelled, as a code: `no_longer_in_plan` (a plan change or a family's choice
-- dropped the occurrence; it comes back if they take it up again), the reason a case's schedule
-- was cancelled (`case_closed`, `case_erased`), or `staff` (their reason is sealed in details).
alter table tasks add column cancel_reason text;
