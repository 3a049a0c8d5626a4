## Stem-cell donors: adverse events and the dates after a donation

nav-adverse-events = Adverse events

case-section-adverse-events = Adverse events
case-no-adverse-events = No adverse events recorded.
ae-add = Record an adverse event
ae-edit-link = Change
marrow-blood-until = May give blood again from
marrow-second-window-until = Second-donation window closes

ae-new-title = Record an adverse event
ae-edit-title = Change an adverse event
ae-form-lead = Write down any discomfort or problem the donor had before or after the collection. The description is health information: it is kept encrypted and only this case's staff can read it.
ae-section-what = What happened
ae-section-assessment = Assessment and reporting
ae-occurred-on = Date it happened
ae-occurred-on-hint = Include anything during mobilisation (the injections before collection).
ae-category = Category
ae-grade = Severity
ae-grade-hint = CTCAE-like grades: 1 is the mildest, 5 is death.
ae-description = Description
ae-description-hint = In plain words: what happened, what was done, how the donor felt. Kept encrypted.
ae-relation = Related to the donation
ae-outcome = Outcome
ae-reported-on = Reported to the registry on
ae-reported-on-hint = Leave empty if not reported yet.

ae-category-pain = Pain
ae-category-fatigue = Fatigue
ae-category-bleeding = Bleeding
ae-category-infection = Infection
ae-category-anaesthesia-reaction = Reaction to anaesthesia
ae-category-allergic = Allergic reaction
ae-category-other = Other

ae-grade-mild = mild
ae-grade-moderate = moderate
ae-grade-severe = severe
ae-grade-life-threatening = life-threatening
ae-grade-death = death
ae-grade-option-1 = Grade 1 · mild
ae-grade-option-2 = Grade 2 · moderate
ae-grade-option-3 = Grade 3 · severe
ae-grade-option-4 = Grade 4 · life-threatening
ae-grade-option-5 = Grade 5 · death
ae-grade-any = Any grade

ae-relation-related = Related
ae-relation-possibly = Possibly related
ae-relation-unlikely = Unlikely to be related
ae-relation-unrelated = Not related

ae-outcome-recovering = Recovering
ae-outcome-resolved = Resolved
ae-outcome-resolved-with-sequelae = Resolved with lasting effects
ae-outcome-ongoing = Ongoing

ae-list-title = Adverse events
ae-list-lead = Adverse events recorded for the stem-cell donors in your care. The registry's report holds no names, phones or descriptions, only a case reference.
ae-csv = Download the registry report (CSV)
ae-filter-from = Happened from
ae-filter-to = Happened until
ae-filter-grade = Severity
ae-filter-show = Show
ae-not-reported = Not reported yet
ae-reference = Case reference
ae-none = No adverse events match.

ae-not-marrow-title = No adverse events for this case
ae-not-marrow-body = Adverse events are recorded for stem-cell donors only.

msg-ae-before-collection = Cannot be more than { $a } days before the collection ({ $b })
msg-ae-reported-early = Cannot be before the date it happened
msg-range = The end cannot be before the start
