nav-reports = Reports
report-title = Reports
report-lead = The month's or the year's follow-ups, outreach, consents and ethics review in numbers, to download or print for the Red Cross. A report holds counts only: no one's name or contact details.
report-filter = Choose what the report covers
report-period-field = Period
report-period-hint = A month (such as 2026-11) or a year (such as 2026)
report-region-field = Region
report-show = Show report
report-csv = Download table (CSV)
report-periods = Other periods
report-previous = ← { $period }
report-next = { $period } →
report-whole-year = All of { $period }
report-period-month = { $month ->
    [1] January
    [2] February
    [3] March
    [4] April
    [5] May
    [6] June
    [7] July
    [8] August
    [9] September
    [10] October
    [11] November
   *[12] December
  } { $year }
report-period-year = { $year }
report-month-short = { $month ->
    [1] Jan
    [2] Feb
    [3] Mar
    [4] Apr
    [5] May
    [6] Jun
    [7] Jul
    [8] Aug
    [9] Sep
    [10] Oct
    [11] Nov
   *[12] Dec
  }
report-covers = From { $from } to { $to }
report-region = Region: { $region }
report-all-regions = All regions
report-summary = At a glance
report-stat-followups = follow-ups done / due
report-stat-followups-open = { $count } not done yet
report-stat-sent = greetings and notices sent
report-stat-not-sent = { $count } more not sent, { $held } of them held for a person to look at
report-stat-consents = consents in force
report-stat-consents-moves = { $given } given and { $withdrawn } withdrawn in the period
report-stat-findings = ethics findings open
report-stat-findings-moves = { $opened } raised and { $closed } closed in the period
report-stat-cases = cases in care
report-stat-cases-new = { $count } opened in the period
report-standing = Consents in force, open findings and cases in care are as of { $date }.
report-trend = The last twelve months
report-chart-followups = Follow-ups each month (calls and visits)
report-chart-outreach = Outreach messages each month
report-followups-due = Due
report-followups-done = Done
report-followups-late = Done late
report-followups-open = Not done
report-outreach-sent = Sent
report-outreach-not-sent = Not sent
report-outreach-held = Held
report-consents-given = Given
report-consents-withdrawn = Withdrawn
report-consents-active = In force
report-findings-opened = Findings raised
report-findings-closed = Closed
report-findings-open = Open
report-cases-new = New cases
report-cases-open = Cases in care
report-months-table = Show the numbers for each month
report-month = Month
report-groups = By programme and region
report-nothing = Nothing to count in this period.
report-not-sent = Messages not sent, and why
report-all-sent = Every message of this period was sent.
report-status = Status
report-reason = Reason
report-count = Count
report-by-channel = Messages sent, by channel
report-channel = Channel
report-consents = Consents by kind
report-no-consents = No consent changed in this period.
report-foot = Counted from each case's programme, region, statuses and dates; no encrypted personal detail was read.
msg-period = Enter a month (such as 2026-11) or a year (such as 2026)
msg-period-year = The year must be from { $a } to { $b }
msg-period-month = The month must be from 01 to 12
msg-report-region = A supervisor sees the reports of their own region only
