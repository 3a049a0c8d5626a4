//! `--demo`: synthetic accounts and cases so a newcomer sees a populated system. Every name,
//! number and address here is invented. Loaded once per database.

use chrono::{DateTime, Duration, Utc};

use crate::config::Config;
use crate::crypto::SecretString;
use crate::domain::accounts::{self, NewUserInput};
use crate::domain::cases::{self, CaseInput, DonationInput, DonorInput};
use crate::domain::consents::{self, ConsentInput};
use crate::domain::contacts::{self, ContactInput};
use crate::domain::types::national_id_check;
use crate::domain::Services;
use crate::policy::Actor;

pub const DEMO_PASSWORD: &str = "demo-password-2026";

const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"];
const GIVEN: &[&str] = &[
    "建国", "秀英", "志强", "丽娟", "海燕", "明", "静", "伟", "芳", "磊",
];

pub async fn load(svc: &Services, cfg: &Config, now: DateTime<Utc>) -> anyhow::Result<()> {
    if svc.store.meta_get("demo_loaded").await?.is_some() {
        print_logins();
        return Ok(());
    }
    let mut ids = Vec::new();
    for (username, role, region, name) in [
        ("demo-admin", "admin", None, "Demo Admin"),
        (
            "demo-supervisor",
            "supervisor",
            Some("yinzhou"),
            "Demo Supervisor",
        ),
        (
            "demo-coordinator",
            "coordinator",
            Some("yinzhou"),
            "Demo Coordinator",
        ),
        (
            "demo-reviewer",
            "ethics_reviewer",
            None,
            "Demo Ethics Reviewer",
        ),
        (
            "demo-volunteer",
            "volunteer",
            Some("yinzhou"),
            "Demo Volunteer",
        ),
    ] {
        let input = NewUserInput {
            email: None,
            username: Some(username.into()),
            display_name: Some(name.into()),
            role: Some(role.into()),
            region: region.map(str::to_string),
            password: Some(SecretString::new(DEMO_PASSWORD.into())),
        };
        let row = accounts::new_user(&input, now)?;
        ids.push(row.id.clone());
        let audit = crate::audit::AuditEntry::new(None, "user.create", "user", now)
            .target(&row.id)
            .reason("demo");
        svc.store.insert_user(&row, &[audit]).await?;
    }
    let coordinator = Actor {
        user_id: ids[2].clone(),
        username: "demo-coordinator".into(),
        role: crate::domain::types::Role::Coordinator,
        region: Some("yinzhou".into()),
        contact_id: None,
        must_enrol: false,
    };
    let today = now.date_naive();
    let mut first_case: Option<String> = None;
    // Cases whose donor's name the memorial event's list puts forward (some with consent).
    let mut family_cases: Vec<String> = Vec::new();
    for i in 0..24u32 {
        let program = ["marrow", "organ", "body"][(i % 3) as usize];
        let birth = today - Duration::days(365 * (25 + i64::from(i) * 2) + i64::from(i) * 11);
        let donated = today - Duration::days(3 + i64::from(i) * 29);
        let first17 = format!("330212{}{:03}", birth.format("%Y%m%d"), 100 + i);
        let id = format!("{first17}{}", national_id_check(&first17).unwrap_or('0'));
        let name = format!(
            "{}{}",
            SURNAMES[i as usize % SURNAMES.len()],
            GIVEN[(i as usize * 7) % GIVEN.len()]
        );
        let deceased = program != "marrow";
        let kind = match program {
            "marrow" => ["pbsc", "marrow"][(i % 2) as usize],
            "organ" => ["kidney", "liver", "cornea", "multi_organ"][(i % 4) as usize],
            _ => "whole_body",
        };
        let input = CaseInput {
            program: Some(program.into()),
            region: Some("yinzhou".into()),
            donor: Some(DonorInput {
                full_name: Some(name),
                sex: Some(["f", "m"][(i % 2) as usize].into()),
                birth_date: Some(birth.to_string()),
                national_id: Some(id),
                phone: Some(format!("139{:08}", 10_000_000 + i * 7919)),
                email: None,
                address: Some(format!("宁波市鄞州区示例路{}号", 10 + i)),
                deceased: Some(deceased),
                death_date: deceased.then(|| donated.to_string()),
                language: None,
                timezone: None,
            }),
            donation: Some(DonationInput {
                date: Some(donated.to_string()),
                kind: Some(kind.into()),
                hospital: Some("示例医院".into()),
            }),
            notes: Some("Synthetic demo case.".into()),
            ..Default::default()
        };
        let case = cases::create(svc, &coordinator, input, now).await?;
        // Who may be contacted, and how: most families agreed to hear from us through the
        // portal; every fourth case has no contact consent, so its messages are held.
        let consent_of = |subject: &str| ConsentInput {
            kind: Some("contact".into()),
            subject: Some(subject.into()),
            given_by: Some(subject.into()),
            method: Some("electronic".into()),
            document: Some("contact-zh-CN-v1".into()),
            signed_at: Some(donated.to_string()),
            ..Default::default()
        };
        if deceased {
            let contact = contacts::create(
                svc,
                &coordinator,
                &case.id,
                ContactInput {
                    full_name: Some(format!("{}家属", SURNAMES[i as usize % SURNAMES.len()])),
                    relationship: Some(["spouse", "child", "parent"][(i % 3) as usize].into()),
                    phone: Some(format!("137{:08}", 20_000_000 + i * 104_729)),
                    address: Some(format!("宁波市鄞州区示例路{}号", 10 + i)),
                    preferred_channel: Some(["portal", "letter", "sms"][(i % 3) as usize].into()),
                    language: Some("zh-CN".into()),
                    ..Default::default()
                },
                &cfg.default_timezone,
                now,
            )
            .await?;
            if i % 4 != 3 {
                consents::record(svc, &coordinator, &case.id, consent_of(&contact.id), now).await?;
            }
            if i % 4 == 1 {
                // Some families agreed that the donor's name may be published and engraved.
                let publicity = ConsentInput {
                    kind: Some("publicity".into()),
                    subject: Some("donor".into()),
                    given_by: Some(contact.id.clone()),
                    method: Some("written".into()),
                    document: Some("publicity-zh-CN-v1".into()),
                    signed_at: Some(donated.to_string()),
                    ..Default::default()
                };
                consents::record(svc, &coordinator, &case.id, publicity, now).await?;
                family_cases.push(case.id.clone());
            } else if i % 4 == 2 {
                family_cases.push(case.id.clone());
            }
            if i == 1 {
                // One family has joined the portal, through the invitation they were sent.
                let link =
                    crate::domain::family::invite(svc, &coordinator, &contact.id, "", now).await?;
                let token = link.invite_url.rsplit('/').next().unwrap_or_default();
                let joined = crate::domain::family::AcceptInput {
                    username: Some("demo-family".into()),
                    password: Some(SecretString::new(DEMO_PASSWORD.into())),
                };
                crate::domain::family::accept(svc, token, joined, now).await?;
                demo_letters(svc, &coordinator, &case.id, &contact.id, donated, now).await?;
            }
            if i % 3 == 1 && i < 12 {
                // The volunteer's home visits to a few families, in the coming days.
                let due = (today + Duration::days(1 + i64::from(i / 3)))
                    .and_hms_opt(2, 0, 0)
                    .map(|t| t.and_utc().to_rfc3339());
                let visit: crate::domain::tasks::TaskInput =
                    crate::domain::from_json(serde_json::json!({
                        "kind": "visit", "due_at": due, "assignee_id": ids[4],
                        "contact_id": contact.id,
                    }))?;
                crate::domain::tasks::create(svc, &coordinator, &case.id, visit, now).await?;
            }
            if i < 6 {
                // A recent loss: the family asked for the traditional mourning days.
                let prefs = crate::domain::schedule::PreferencesInput {
                    mourning_days: Some(true),
                    skip_festivals: None,
                };
                crate::domain::schedule::update_schedule(svc, &coordinator, &case.id, prefs, now)
                    .await?;
            }
        } else {
            if i % 4 != 3 {
                consents::record(svc, &coordinator, &case.id, consent_of("donor"), now).await?;
            }
            if i % 2 == 0 {
                // Half of the marrow donors' registry consents are on file.
                let registry = ConsentInput {
                    kind: Some("registry".into()),
                    document: Some("registry-zh-CN-v1".into()),
                    method: Some("written".into()),
                    ..consent_of("donor")
                };
                consents::record(svc, &coordinator, &case.id, registry, now).await?;
            }
            if i == 0 || i == 3 {
                // Bone pain during mobilisation (PBSC), and a sore hip after a harvest that
                // was reported to the registry and has passed.
                let (days, category, grade, outcome, reported, text) = if i == 0 {
                    (
                        -2,
                        "pain",
                        1,
                        "recovering",
                        None,
                        "动员期注射后腰背部骨痛，服用止痛药后缓解。",
                    )
                } else {
                    (
                        1,
                        "pain",
                        2,
                        "resolved",
                        Some(donated + Duration::days(5)),
                        "采集后髋部穿刺处疼痛，一周内好转。",
                    )
                };
                let event = crate::domain::adverse_events::AdverseEventInput {
                    occurred_on: Some((donated + Duration::days(days)).to_string()),
                    category: Some(category.into()),
                    grade: Some(grade),
                    relation: Some("related".into()),
                    outcome: Some(outcome.into()),
                    reported_on: reported.map(|d| d.to_string()),
                    description: Some(text.into()),
                };
                crate::domain::adverse_events::create(svc, &coordinator, &case.id, event, now)
                    .await?;
            }
        }
        first_case.get_or_insert(case.id);
    }
    // Next Qingming's remembrance, with the families of the coordinator's cases invited and
    // a few names put forward for the memorial wall.
    let year = chrono::Datelike::year(&today) + 1;
    if let Some(day) = crate::schedule::calendar::qingming(year) {
        use crate::domain::memorials;
        let event = memorials::MemorialEventInput {
            kind: Some("qingming".into()),
            title: Some(format!("{year} 年清明缅怀活动")),
            program: None,
            starts_at: Some(format!("{}T09:30", day - Duration::days(1))),
            place: Some("宁波福泉山纪念园 生命礼赞纪念墙".into()),
            details: Some("上午九点在纪念园正门集合，组织方提供往返班车。".into()),
            reply_by: Some((day - Duration::days(10)).to_string()),
            reminder_days: Some(3),
        };
        let e = memorials::create_event(svc, &coordinator, event, now).await?;
        memorials::invite(svc, &coordinator, &e.id, Default::default(), now).await?;
        // A few families have answered by phone already: two coming (one needing a hand on
        // the day), one not this year; the rest are yet to reply.
        let first = memorials::guests(svc, &coordinator, &e.id, Default::default(), now).await?;
        let replies = [
            ("coming", Some(3), Some("母亲腿脚不便，需要轮椅和搀扶。")),
            ("coming", Some(2), None),
            (
                "not_coming",
                None,
                Some("今年在外地，想请工作人员代献一束花。"),
            ),
        ];
        for (guest, (reply, party_size, needs)) in first.items.iter().zip(replies) {
            let input = memorials::ReplyInput {
                reply: Some(reply.into()),
                party_size,
                needs: needs.map(Into::into),
            };
            memorials::record_reply(svc, &coordinator, &guest.id, input, now).await?;
        }
        for case_id in &family_cases {
            let name = memorials::NameInput {
                case_id: case_id.clone(),
            };
            memorials::add_name(svc, &coordinator, &e.id, name, now).await?;
        }
    }
    // A colleague from another district opened the first case one night, stating why, so the
    // ethics reviewer has a break-glass use to look at.
    if let Some(case) = &first_case {
        let input = NewUserInput {
            email: None,
            username: Some("demo-coordinator-haishu".into()),
            display_name: Some("Demo Coordinator (Haishu)".into()),
            role: Some("coordinator".into()),
            region: Some("haishu".into()),
            password: Some(SecretString::new(DEMO_PASSWORD.into())),
        };
        let row = accounts::new_user(&input, now)?;
        let audit = crate::audit::AuditEntry::new(None, "user.create", "user", now)
            .target(&row.id)
            .reason("demo");
        svc.store.insert_user(&row, &[audit]).await?;
        let colleague = accounts::actor_of(&row)?;
        let reason = "家属晚上来电询问探视安排，负责的同事休假，需要查看联系方式";
        cases::break_glass(svc, &colleague, case, reason, None, now).await?;
    }
    svc.store.meta_set("demo_loaded", &now.to_rfc3339()).await?;
    println!("donorcare: demo data loaded: 24 synthetic cases in region yinzhou");
    print_logins();
    Ok(())
}

/// Letters with the recipient of the portal family's case: both sides agreed to write; one
/// letter from the recipient was passed on, one from the family waits for review.
async fn demo_letters(
    svc: &Services,
    coordinator: &Actor,
    case_id: &str,
    contact_id: &str,
    donated: chrono::NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    use crate::domain::correspondence::{self, CorrespondentInput, LetterInput, RedactInput};
    let agreed = donated + Duration::days(7);
    let consent = ConsentInput {
        kind: Some("correspondence".into()),
        subject: Some(contact_id.into()),
        given_by: Some(contact_id.into()),
        method: Some("electronic".into()),
        document: Some("correspondence-zh-CN-v1".into()),
        signed_at: Some(agreed.to_string()),
        ..Default::default()
    };
    consents::record(svc, coordinator, case_id, consent, now).await?;
    let recipient = CorrespondentInput {
        label: Some("受者 A".into()),
        role: Some("recipient".into()),
        reference: Some("DEMO-TX-0001".into()),
        consented_on: Some(agreed.to_string()),
        consent_withdrawn_on: None,
    };
    let recipient =
        correspondence::add_correspondent(svc, coordinator, case_id, recipient, now).await?;
    let letter = |direction: &str, text: &str| LetterInput {
        correspondent_id: Some(recipient.id.clone()),
        direction: Some(direction.into()),
        author: (direction == "to_recipient").then(|| contact_id.to_string()),
        addressee: (direction == "to_family").then(|| contact_id.to_string()),
        received_on: Some((agreed + Duration::days(7)).to_string()),
        text: Some(text.into()),
    };
    let thanks = correspondence::record(
        svc,
        coordinator,
        case_id,
        letter("to_family", "亲爱的朋友：我在示例医院接受了移植，现在每天都能散步了。谢谢你们在最难的时候做出的决定。"),
        now,
    )
    .await?;
    let redacted = RedactInput {
        redacted_text: Some("亲爱的朋友：我在［已隐去］接受了移植，现在每天都能散步了。谢谢你们在最难的时候做出的决定。".into()),
    };
    correspondence::redact(svc, coordinator, &thanks.id, redacted, now).await?;
    correspondence::release(svc, coordinator, &thanks.id, now).await?;
    correspondence::record(
        svc,
        coordinator,
        case_id,
        letter(
            "to_recipient",
            "收到你的信，我们全家都哭了。希望你好好照顾自己。",
        ),
        now,
    )
    .await?;
    Ok(())
}

fn print_logins() {
    println!(
        "donorcare: demo logins (password {DEMO_PASSWORD}): demo-admin, demo-supervisor, \
         demo-coordinator, demo-reviewer, demo-volunteer, demo-family"
    );
}
