outreach-title = Messages that need a person
outreach-filter = Show by status
outreach-all = All
outreach-due = Due { $date }
