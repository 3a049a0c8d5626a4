//! Who may do what. Every access goes through [`authorize`]; anything not granted here is
//! denied. A record outside the caller's scope answers 404 (its existence is not revealed); an
//! action the caller's role may never take answers 403.

use crate::domain::types::Role;
use crate::error::{Error, Result};
use crate::store::CaseScope;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    pub region: Option<String>,
    /// For family accounts: the contact they are.
    pub contact_id: Option<String>,
    /// The role must enrol TOTP (`DONORCARE_REQUIRE_TOTP`) and has not: only enrolment is open.
    pub must_enrol: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Accounts, keys: the admin's domain.
    ManageAccounts,
    CreateCase,
    ListCases,
    /// Read a case with its donor identity, donation and notes.
    ReadCase,
    UpdateCase,
    ManageContacts,
    AssignCase,
    /// Open an unassigned case for a limited time, with a stated reason.
    BreakGlass,
    /// List break-glass grants.
    ReviewBreakGlass,
    /// Acknowledge a break-glass use, or raise a concern about it.
    AcknowledgeBreakGlass,
    /// Read the audit log and verify it.
    ReadAudit,
    Login,
    Logout,
    ManageKeys,
    /// Read the outreach templates and preview them on sample values.
    ManageTemplates,
    /// Invite a contact to the family portal.
    InviteContact,
    /// A family's own portal: outreach, preferences, consents, access log.
    FamilyPortal,
    /// Ask for a case's personal data to be erased.
    RequestErasure,
    ListErasure,
    /// Approve or reject an erasure request (the second pair of eyes).
    DecideErasure,
    CreateTask,
    ListTasks,
    /// Read a task with the contact it concerns.
    ReadTask,
    /// Record a visit's or call's outcome.
    CompleteTask,
    /// Record or withdraw a consent on a case.
    RecordConsent,
    /// Read a case's consent records.
    ReadConsent,
    ListConsents,
    /// An ethics reviewer's decision on a finding or a consent.
    ReviewConsent,
    /// An ethics reviewer sees a donor's identity, stating why.
    RevealIdentity,
    /// Read the care plans.
    ReadCarePlans,
    /// Change a care plan.
    ManageCarePlans,
    /// Read a case's outreach messages and schedule choices.
    ReadOutreach,
    /// Change a case's schedule choices (mourning days, festivals).
    ManageSchedule,
    /// Reschedule or cancel a task.
    ChangeTask,
    /// Put a held or dead message back in the queue.
    ReleaseOutreach,
    /// Cancel a held or dead message for good.
    CancelOutreach,
    /// Print the day's letters.
    PrintLetters,
    /// List the held, dead and failed messages of one's cases.
    ListOutreachAttention,
    /// Read the monthly and yearly reports (counts only; a supervisor's of their region).
    ReadReports,
    /// Record an adverse event on a marrow case.
    RecordAdverseEvent,
    /// Change an adverse event (its outcome, when it was reported, …).
    UpdateAdverseEvent,
    /// Read a case's adverse events (their descriptions only with `reads_health_notes`).
    ReadAdverseEvents,
    /// List adverse events across the cases of one's scope.
    ListAdverseEvents,
    /// The registry's pseudonymous report of adverse events.
    ExportAdverseEvents,
    /// Record a letter between the family side and a recipient, or add or change a
    /// correspondent.
    RecordCorrespondence,
    /// Read a case's letters and correspondents (their texts only with `reads_letters`).
    ReadCorrespondence,
    /// Save a letter's redacted text.
    RedactCorrespondence,
    /// Pass a redacted letter on to the other side.
    ReleaseCorrespondence,
    /// Withhold a letter, with a reason.
    WithholdCorrespondence,
    /// Print a released letter to the recipient for forwarding.
    PrintCorrespondence,
    /// List letters across the cases of one's scope (metadata only).
    ListCorrespondence,
    /// A family reads the released letters addressed to it.
    FamilyCorrespondence,
    /// A family member writes a letter to the recipient (recorded for review).
    FamilyWriteCorrespondence,
    /// See a region's memorial events (what, when, where) and their head count.
    ReadMemorials,
    /// Plan, change or cancel a region's memorial event.
    ManageMemorials,
    /// Invite a case's family to a memorial event, record their reply, put the donor's name
    /// forward for the published list.
    ManageMemorialGuests,
    /// The event's list of names for the engraver (only names with publicity consent).
    ExportMemorialNames,
    /// A family answers its own invitation.
    ReplyToMemorial,
}

impl Action {
    /// The name of the action in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ManageAccounts => "user.manage",
            Action::CreateCase => "case.create",
            Action::ListCases => "case.list",
            Action::ReadCase => "case.view",
            Action::UpdateCase => "case.update",
            Action::ManageContacts => "contact.write",
            Action::AssignCase => "case.assign",
            Action::BreakGlass => "case.break_glass",
            Action::ReviewBreakGlass => "break_glass.list",
            Action::AcknowledgeBreakGlass => "break_glass.review",
            Action::ReadAudit => "audit.read",
            Action::Login => "auth.login",
            Action::Logout => "auth.logout",
            Action::ManageKeys => "keys.manage",
            Action::ManageTemplates => "template.manage",
            Action::InviteContact => "contact.invite",
            Action::FamilyPortal => "family.portal",
            Action::RequestErasure => "case.erasure_request",
            Action::ListErasure => "erasure.list",
            Action::DecideErasure => "case.erase",
            Action::CreateTask => "task.create",
            Action::ListTasks => "task.list",
            Action::ReadTask => "task.view",
            Action::CompleteTask => "task.complete",
            Action::RecordConsent => "consent.record",
            Action::ReadConsent => "consent.view",
            Action::ListConsents => "consent.list",
            Action::ReviewConsent => "consent.review",
            Action::RevealIdentity => "case.reveal",
            Action::ReadCarePlans => "care_plan.read",
            Action::ManageCarePlans => "care_plan.update",
            Action::ReadOutreach => "outreach.view",
            Action::ManageSchedule => "schedule.update",
            Action::ChangeTask => "task.change",
            Action::ReleaseOutreach => "outreach.release",
            Action::CancelOutreach => "outreach.cancel",
            Action::PrintLetters => "letters.print",
            Action::ListOutreachAttention => "outreach.attention",
            Action::ReadReports => "report.view",
            Action::RecordAdverseEvent => "adverse_event.record",
            Action::UpdateAdverseEvent => "adverse_event.update",
            Action::ReadAdverseEvents => "adverse_event.view",
            Action::ListAdverseEvents => "adverse_event.list",
            Action::ExportAdverseEvents => "adverse_event.export",
            Action::RecordCorrespondence => "correspondence.record",
            Action::ReadCorrespondence => "correspondence.view",
            Action::RedactCorrespondence => "correspondence.redact",
            Action::ReleaseCorrespondence => "correspondence.release",
            Action::WithholdCorrespondence => "correspondence.withhold",
            Action::PrintCorrespondence => "correspondence.print",
            Action::ListCorrespondence => "correspondence.list",
            Action::FamilyCorrespondence => "correspondence.family_view",
            Action::FamilyWriteCorrespondence => "correspondence.family_write",
            Action::ReadMemorials => "memorial.view",
            Action::ManageMemorials => "memorial.manage",
            Action::ManageMemorialGuests => "memorial.invite",
            Action::ExportMemorialNames => "memorial.export_names",
            Action::ReplyToMemorial => "memorial.reply",
        }
    }
}

/// What the action is taken on.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    System,
    /// An existing case: its region, whether the actor is assigned to it (primary or team),
    /// and whether the actor holds an unexpired break-glass grant on it.
    Case {
        region: &'a str,
        assigned: bool,
        break_glass: bool,
    },
    /// Something that belongs to a region as a whole (a memorial event).
    Region {
        region: &'a str,
    },
    /// An existing task: its case's region, whether the actor is assigned to the case (or holds
    /// break-glass on it), and whether the task is assigned to the actor.
    Task {
        region: &'a str,
        case_access: bool,
        own: bool,
    },
}

/// The decision for one access. Deny by default: only the arms below grant anything.
pub fn authorize(actor: &Actor, action: Action, resource: Resource<'_>) -> Result<()> {
    use Action::*;
    use Role::*;
    let in_region = |region: &str| actor.region.as_deref() == Some(region);
    match (actor.role, action, resource) {
        (Admin, ManageAccounts, Resource::System) => Ok(()),
        (Admin, ManageCarePlans, Resource::System) => Ok(()),
        (Admin, ManageKeys | ManageTemplates, Resource::System) => Ok(()),
        (Admin | Supervisor | Coordinator, ReadCarePlans, Resource::System) => Ok(()),

        (Coordinator | Supervisor, CreateCase | ListCases, Resource::System) => Ok(()),

        (
            Supervisor,
            ReadCase
            | UpdateCase
            | ManageContacts
            | AssignCase
            | InviteContact
            | RequestErasure
            | CreateTask
            | RecordConsent
            | ReadConsent
            | ReadOutreach
            | ManageSchedule
            | ReleaseOutreach
            | CancelOutreach
            | RecordAdverseEvent
            | UpdateAdverseEvent
            | ReadAdverseEvents
            | RecordCorrespondence
            | ReadCorrespondence
            | RedactCorrespondence
            | ReleaseCorrespondence
            | WithholdCorrespondence
            | PrintCorrespondence
            | ManageMemorialGuests,
            Resource::Case { region, .. },
        ) => {
            if in_region(region) {
                Ok(())
            } else {
                Err(Error::NotFound)
            }
        }
        (
            Coordinator,
            ReadCase
            | UpdateCase
            | ManageContacts
            | InviteContact
            | CreateTask
            | RecordConsent
            | ReadConsent
            | ReadOutreach
            | ManageSchedule
            | ReleaseOutreach
            | CancelOutreach
            | RecordAdverseEvent
            | UpdateAdverseEvent
            | ReadAdverseEvents
            | RecordCorrespondence
            | ReadCorrespondence
            | RedactCorrespondence
            | ReleaseCorrespondence
            | WithholdCorrespondence
            | PrintCorrespondence
            | ManageMemorialGuests,
            Resource::Case {
                assigned,
                break_glass,
                ..
            },
        ) => {
            if assigned || break_glass {
                Ok(())
            } else {
                Err(Error::NotFound)
            }
        }
        // Break-glass is for cases a coordinator is not assigned to; any existing case qualifies.
        (Coordinator, BreakGlass, Resource::Case { .. }) => Ok(()),
        (Supervisor | EthicsReviewer, ReviewBreakGlass, Resource::System) => Ok(()),
        (EthicsReviewer, AcknowledgeBreakGlass, Resource::System) => Ok(()),
        (Admin | Supervisor | EthicsReviewer, ReadAudit, Resource::System) => Ok(()),
        (Admin | Supervisor | EthicsReviewer, ReadReports, Resource::System) => Ok(()),
        // Admins may ask for an erasure without reading the case; the family asks through its portal.
        (Admin, RequestErasure, Resource::Case { .. }) => Ok(()),
        (Admin | Supervisor | EthicsReviewer, ListErasure, Resource::System) => Ok(()),
        (EthicsReviewer, DecideErasure, Resource::System) => Ok(()),
        (Family, FamilyPortal, Resource::System) if actor.contact_id.is_some() => Ok(()),
        (Volunteer | Coordinator | Supervisor, ListTasks, Resource::System) => Ok(()),
        (Coordinator | Supervisor, PrintLetters | ListOutreachAttention, Resource::System) => {
            Ok(())
        }
        // Adverse events are the donor's health: the case's own staff record and read them.
        // Ethics reviewers oversee donor safety: they read every case's events without the
        // descriptions (health notes are not theirs), and with supervisors (their region)
        // export the registry's pseudonymous report. Admins hold no case content.
        (EthicsReviewer, ReadAdverseEvents, Resource::Case { .. }) => Ok(()),
        (Coordinator | Supervisor | EthicsReviewer, ListAdverseEvents, Resource::System) => Ok(()),
        (Supervisor | EthicsReviewer, ExportAdverseEvents, Resource::System) => Ok(()),
        // Letters between a family and a recipient are relayed by the case's own staff (the arms
        // above). Ethics reviewers oversee that each release was covered by consents: they
        // read every letter's metadata (status, dates, the consent that covered it), never a
        // text (`reads_letters`). Admins and volunteers hold no case content; a family reads
        // only the released letters addressed to it.
        (EthicsReviewer, ReadCorrespondence, Resource::Case { .. }) => Ok(()),
        (Coordinator | Supervisor | EthicsReviewer, ListCorrespondence, Resource::System) => Ok(()),
        (Family, FamilyCorrespondence | FamilyWriteCorrespondence, Resource::System)
            if actor.contact_id.is_some() =>
        {
            Ok(())
        }
        // Memorial events are the region's care team's: they see and plan them; the list of
        // names for the engraver leaves the office, so the region's supervisor signs it off.
        (
            Coordinator | Supervisor,
            ReadMemorials | ManageMemorials,
            Resource::Region { region },
        )
        | (Supervisor, ExportMemorialNames, Resource::Region { region }) => {
            if in_region(region) {
                Ok(())
            } else {
                Err(Error::NotFound)
            }
        }
        (Family, ReplyToMemorial, Resource::System) if actor.contact_id.is_some() => Ok(()),
        // Ethics reviewers read every consent record (not the rest of the case).
        (EthicsReviewer, ReadConsent, Resource::Case { .. }) => Ok(()),
        (Coordinator | Supervisor | EthicsReviewer, ListConsents, Resource::System) => Ok(()),
        (EthicsReviewer, ReviewConsent, Resource::System) => Ok(()),
        (EthicsReviewer, RevealIdentity, Resource::Case { .. }) => Ok(()),
        (Volunteer, ReadTask | CompleteTask, Resource::Task { own, .. })
        | (
            Coordinator,
            ReadTask | CompleteTask | ChangeTask,
            Resource::Task {
                case_access: own, ..
            },
        ) => {
            if own {
                Ok(())
            } else {
                Err(Error::NotFound)
            }
        }
        (Supervisor, ReadTask | CompleteTask | ChangeTask, Resource::Task { region, .. }) => {
            if in_region(region) {
                Ok(())
            } else {
                Err(Error::NotFound)
            }
        }
        // A coordinator may never reassign; but an unassigned case stays invisible.
        (Coordinator, AssignCase, Resource::Case { assigned, .. }) => {
            if assigned {
                Err(Error::Forbidden)
            } else {
                Err(Error::NotFound)
            }
        }
        _ => Err(Error::Forbidden),
    }
}

/// The cases a listing may show to `actor`; 403 for roles that list no cases.
pub fn case_scope(actor: &Actor) -> Result<CaseScope> {
    authorize(actor, Action::ListCases, Resource::System)?;
    match actor.role {
        Role::Supervisor => Ok(CaseScope::Region(actor.region.clone().unwrap_or_default())),
        Role::Coordinator => Ok(CaseScope::AssignedTo(actor.user_id.clone())),
        _ => Err(Error::Forbidden),
    }
}

/// Whether `role`, reading a case's records, also reads its visit and health notes (the
/// access table's "visit and health notes": the case's coordinator and supervisor only).
pub fn reads_health_notes(role: Role) -> bool {
    matches!(role, Role::Coordinator | Role::Supervisor)
}

/// Whether `role`, reading a case's letters, also reads their texts and the correspondents'
/// references (the case's coordinator and supervisor only).
pub fn reads_letters(role: Role) -> bool {
    matches!(role, Role::Coordinator | Role::Supervisor)
}

/// The cases whose letters the correspondence queue may hold for `actor`.
pub fn correspondence_scope(actor: &Actor) -> Result<CaseScope> {
    authorize(actor, Action::ListCorrespondence, Resource::System)?;
    adverse_event_scope(actor)
}

/// The cases whose adverse events a listing or the registry's report may hold for `actor`.
pub fn adverse_event_scope(actor: &Actor) -> Result<CaseScope> {
    match actor.role {
        Role::Supervisor => Ok(CaseScope::Region(actor.region.clone().unwrap_or_default())),
        Role::Coordinator => Ok(CaseScope::AssignedTo(actor.user_id.clone())),
        Role::EthicsReviewer => Ok(CaseScope::All),
        _ => Err(Error::Forbidden),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor {
            user_id: "u1".into(),
            username: "u".into(),
            role,
            region: Some("north".into()),
            contact_id: None,
            must_enrol: false,
        }
    }

    #[test]
    fn the_table_for_case_reads() {
        let case = |region, assigned, break_glass| Resource::Case {
            region,
            assigned,
            break_glass,
        };
        let own = case("north", true, false);
        let other = case("south", false, false);
        let unassigned_here = case("north", false, false);
        let glass = case("south", false, true);
        for role in Role::ALL.iter().copied() {
            let a = actor(role);
            let got: Vec<Option<u16>> = [own, other, unassigned_here, glass]
                .into_iter()
                .map(|r| match authorize(&a, Action::ReadCase, r) {
                    Ok(()) => None,
                    Err(Error::NotFound) => Some(404),
                    Err(Error::Forbidden) => Some(403),
                    Err(e) => panic!("{e}"),
                })
                .collect();
            let want = match role {
                Role::Coordinator => vec![None, Some(404), Some(404), None],
                Role::Supervisor => vec![None, Some(404), None, Some(404)],
                _ => vec![Some(403); 4],
            };
            assert_eq!(got, want, "{role}");
        }
    }

    #[test]
    fn supervisors_and_reviewers_list_break_glass_uses_and_only_reviewers_judge_them() {
        for role in Role::ALL.iter().copied() {
            let a = actor(role);
            let list = authorize(&a, Action::ReviewBreakGlass, Resource::System).is_ok();
            let judge = authorize(&a, Action::AcknowledgeBreakGlass, Resource::System);
            assert_eq!(
                list,
                matches!(role, Role::Supervisor | Role::EthicsReviewer),
                "{role}"
            );
            match judge {
                Ok(()) => assert_eq!(role, Role::EthicsReviewer),
                Err(e) => assert!(matches!(e, Error::Forbidden), "{role}: {e}"),
            }
        }
    }

    #[test]
    fn adverse_events_are_for_the_case_staff_and_ethics_reviewers_read_and_export_them() {
        let case = |assigned| Resource::Case {
            region: "north",
            assigned,
            break_glass: false,
        };
        let code = |r: Result<()>| match r {
            Ok(()) => 200,
            Err(Error::NotFound) => 404,
            Err(_) => 403,
        };
        for role in Role::ALL.iter().copied() {
            let a = actor(role);
            let got = [
                code(authorize(&a, Action::RecordAdverseEvent, case(true))),
                code(authorize(&a, Action::RecordAdverseEvent, case(false))),
                code(authorize(&a, Action::ReadAdverseEvents, case(false))),
                code(authorize(&a, Action::ListAdverseEvents, Resource::System)),
                code(authorize(&a, Action::ExportAdverseEvents, Resource::System)),
            ];
            let want = match role {
                Role::Coordinator => [200, 404, 404, 200, 403],
                Role::Supervisor => [200, 200, 200, 200, 200],
                Role::EthicsReviewer => [403, 403, 200, 200, 200],
                _ => [403; 5],
            };
            assert_eq!(got, want, "{role}");
            assert_eq!(
                reads_health_notes(role),
                matches!(role, Role::Coordinator | Role::Supervisor)
            );
        }
    }

    #[test]
    fn letters_are_relayed_by_the_case_staff_and_overseen_by_ethics_reviewers() {
        let case = |assigned| Resource::Case {
            region: "north",
            assigned,
            break_glass: false,
        };
        let code = |r: Result<()>| match r {
            Ok(()) => 200,
            Err(Error::NotFound) => 404,
            Err(_) => 403,
        };
        for role in Role::ALL.iter().copied() {
            let a = actor(role);
            let mut family = a.clone();
            family.contact_id = Some("k1".into());
            let got = [
                code(authorize(&a, Action::RecordCorrespondence, case(true))),
                code(authorize(&a, Action::ReleaseCorrespondence, case(true))),
                code(authorize(&a, Action::ReleaseCorrespondence, case(false))),
                code(authorize(&a, Action::ReadCorrespondence, case(false))),
                code(authorize(&a, Action::ListCorrespondence, Resource::System)),
                code(authorize(
                    &family,
                    Action::FamilyCorrespondence,
                    Resource::System,
                )),
                code(authorize(
                    &family,
                    Action::FamilyWriteCorrespondence,
                    Resource::System,
                )),
                code(authorize(
                    &a,
                    Action::FamilyWriteCorrespondence,
                    Resource::System,
                )),
            ];
            let want = match role {
                Role::Coordinator => [200, 200, 404, 404, 200, 403, 403, 403],
                Role::Supervisor => [200, 200, 200, 200, 200, 403, 403, 403],
                Role::EthicsReviewer => [403, 403, 403, 200, 200, 403, 403, 403],
                // A family account that is no contact has no portal.
                Role::Family => [403, 403, 403, 403, 403, 200, 200, 403],
                _ => [403; 8],
            };
            assert_eq!(got, want, "{role}");
            assert_eq!(
                reads_letters(role),
                matches!(role, Role::Coordinator | Role::Supervisor)
            );
        }
    }

    #[test]
    fn memorial_events_are_the_regions_care_team_and_its_supervisor_exports_the_names() {
        let here = Resource::Region { region: "north" };
        let there = Resource::Region { region: "south" };
        let case = |assigned| Resource::Case {
            region: "north",
            assigned,
            break_glass: false,
        };
        let code = |r: Result<()>| match r {
            Ok(()) => 200,
            Err(Error::NotFound) => 404,
            Err(_) => 403,
        };
        for role in Role::ALL.iter().copied() {
            let mut a = actor(role);
            if role == Role::Family {
                a.contact_id = Some("k1".into());
            }
            let got = [
                code(authorize(&a, Action::ReadMemorials, here)),
                code(authorize(&a, Action::ManageMemorials, here)),
                code(authorize(&a, Action::ManageMemorials, there)),
                code(authorize(&a, Action::ExportMemorialNames, here)),
                code(authorize(&a, Action::ManageMemorialGuests, case(true))),
                code(authorize(&a, Action::ManageMemorialGuests, case(false))),
                code(authorize(&a, Action::ReplyToMemorial, Resource::System)),
            ];
            let want = match role {
                Role::Coordinator => [200, 200, 404, 403, 200, 404, 403],
                Role::Supervisor => [200, 200, 404, 200, 200, 200, 403],
                Role::Family => [403, 403, 403, 403, 403, 403, 200],
                _ => [403; 7],
            };
            assert_eq!(got, want, "{role}");
        }
    }

    #[test]
    fn only_admins_manage_accounts() {
        for role in Role::ALL.iter().copied() {
            let r = authorize(&actor(role), Action::ManageAccounts, Resource::System);
            assert_eq!(r.is_ok(), role == Role::Admin, "{role}");
        }
    }

    #[test]
    fn only_admins_manage_keys_templates_and_care_plans() {
        for action in [
            Action::ManageKeys,
            Action::ManageTemplates,
            Action::ManageCarePlans,
        ] {
            for role in Role::ALL.iter().copied() {
                let r = authorize(&actor(role), action, Resource::System);
                match r {
                    Ok(()) => assert_eq!(role, Role::Admin, "{action:?}"),
                    Err(e) => {
                        assert_ne!(role, Role::Admin, "{action:?}");
                        assert!(matches!(e, Error::Forbidden), "{role} {action:?}: {e}");
                    }
                }
            }
        }
    }
}
