//! The synthetic registry the benchmarks load, and the folders that keep it.
//!
//! Case number `i` is made from `i` alone ([`Synthetic::new`]): region, program, an invented
//! name, a unique phone number (139 and eight digits) and national ID (a Ningbo area code, a
//! birth date, a sequence number and its check character), address, donation and notes. Only
//! the case id and the case key are random. [`load_cases`] seals each case as
//! `domain::cases::create` does ([`seal_case`]), by one coordinator per region who is its
//! primary, and writes them with multi-row inserts in transactions of [`LOAD_BATCH`] cases while
//! a second thread seals the next batch; the `case.create` entries go through
//! `Store::append_audit`, so the hash chain is the store's own and `audit verify` passes.
//! Making a million cases through `create` one by one would take hours.
//!
//! A loaded data set is kept in a folder under `target/bench-data/` and reused while its
//! `complete.json` ([`Marker`]) matches what a run asks for; [`GENERATOR_VERSION`] is part of
//! it, so a change here rebuilds every kept data set. Every name, number and address is
//! invented.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use donorcare::domain::cases::{CaseFilter, Donation, Donor};
use donorcare::domain::types::{Program, Role, Sex};
use donorcare::domain::Services;
use donorcare::policy::Actor;

use super::{
    insert_user, seal_case, with_check, write_batch, Dice, NewCase, SealedCase, LOAD_BATCH,
    PROGRESS_EVERY,
};

/// Bump when the synthetic data or the loader changes, so kept data sets are rebuilt.
pub const GENERATOR_VERSION: u32 = 3;

/// A region of the synthetic registry.
pub struct Region {
    pub code: &'static str,
    pub name: &'static str,
    /// The area code that starts its donors' national IDs.
    pub area: &'static str,
}

pub const REGIONS: [Region; 10] = [
    region("haishu", "海曙区", "330203"),
    region("jiangbei", "江北区", "330205"),
    region("beilun", "北仑区", "330206"),
    region("zhenhai", "镇海区", "330211"),
    region("yinzhou", "鄞州区", "330212"),
    region("fenghua", "奉化区", "330213"),
    region("xiangshan", "象山县", "330225"),
    region("ninghai", "宁海县", "330226"),
    region("yuyao", "余姚市", "330281"),
    region("cixi", "慈溪市", "330282"),
];

const fn region(code: &'static str, name: &'static str, area: &'static str) -> Region {
    Region { code, name, area }
}

// No character of "无此人甲乙丙丁" is in these lists: `benches/store.rs` searches for such names
// as ones no case has.
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高", "郑", "梁", "谢", "宋", "唐", "许", "韩", "邓", "冯", "曹", "彭", "曾",
    "肖", "田", "董", "潘", "袁", "蔡", "蒋", "余",
];

const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "英", "华", "玉", "兰", "萍", "红", "建", "国", "志", "文",
    "海", "燕", "小", "春", "晓", "辉", "丹", "鹏", "婷", "宇", "浩", "凯", "琳", "雪", "荣", "峰",
    "云", "飞", "慧", "颖", "梅", "琴", "斌", "亮", "欣", "思", "佳", "晨",
];

const HOSPITALS: &[&str] = &[
    "宁波市第一医院",
    "宁波市第二医院",
    "宁波大学附属第一医院",
    "宁波市医疗中心李惠利医院",
    "浙江大学医学院附属第一医院",
    "浙江省人民医院",
];

const ROADS: &[&str] = &[
    "中山东路",
    "解放南路",
    "天童南路",
    "钱湖北路",
    "百丈路",
    "江东北路",
    "环城西路",
    "人民路",
];

/// Notes on a living donor's case.
const DONOR_NOTES: &[&str] = &[
    "捐献者希望每年收到献血提醒。",
    "工作日白天不方便接电话，请先发短信。",
    "愿意参加志愿者分享活动。",
    "捐献后恢复良好，希望了解患者的近况。",
];

/// Notes on a deceased donor's case, about the family.
const FAMILY_NOTES: &[&str] = &[
    "家属希望每年清明节前收到纪念活动的通知。",
    "配偶听力不好，请优先发短信，不要在晚上打电话。",
    "子女在外地工作，联系前请先与配偶确认。",
    "捐献者生前是中学教师，学校愿意参加纪念活动。",
    "母亲年事已高，探访时请提前一天预约。",
    "家属婉拒媒体采访，请勿公开任何信息。",
];

/// Which programs the cases belong to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Programs {
    /// Six in ten marrow, three organ, one body.
    Mixed,
    /// Every case a living marrow donor, so the marrow default plan (ten rules) applies in full.
    Marrow,
}

/// The shape of a synthetic registry.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    pub programs: Programs,
    /// The registry's "today": no donation or registration is later. Fixed, so that a kept
    /// data set and the values regenerated from a case number agree.
    pub today: NaiveDate,
    /// Donations fall in the last this many days before `today`.
    pub spread_days: u64,
}

impl Profile {
    /// Living marrow donors who donated in the last `spread_days` days before the day of
    /// [`bench_now`](super::bench_now) in the default zone.
    pub fn marrow(spread_days: u64) -> Profile {
        let tz = donorcare::domain::schedule::ScheduleSettings::default().default_tz;
        Profile {
            programs: Programs::Marrow,
            today: donorcare::schedule::calendar::local_date(tz, super::bench_now()),
            spread_days,
        }
    }
}

/// Synthetic case number `i` of a [`Profile`].
pub struct Synthetic {
    pub program: Program,
    pub region: &'static str,
    pub created_at: DateTime<Utc>,
    pub donor: Donor,
    pub donation: Donation,
    pub notes: Option<String>,
}

impl Synthetic {
    pub fn new(i: u64, profile: &Profile) -> Self {
        let mut d = Dice::new(i);
        let region = &REGIONS[d.below(REGIONS.len() as u64) as usize];
        let program = match (profile.programs, d.below(10)) {
            (Programs::Marrow, _) | (Programs::Mixed, 0..=5) => Program::Marrow,
            (Programs::Mixed, 6..=8) => Program::Organ,
            (Programs::Mixed, _) => Program::Body,
        };
        let today = profile.today;
        let donated = today - chrono::Days::new(d.below(profile.spread_days.max(1)));
        // Birth date and sequence number come from a bijection of `i`, so that IDs are unique
        // (21 900 days of birth dates × 1000 sequence numbers; 7 777 777 is prime to 21 900 000).
        // Every donor is at least 18 on the day of the donation.
        let p = i.wrapping_mul(7_777_777) % 21_900_000;
        let birth = today - chrono::Days::new(profile.spread_days + 18 * 365 + p % 21_900);
        let national_id = with_check(&format!(
            "{}{}{:03}",
            region.area,
            birth.format("%Y%m%d"),
            p / 21_900
        ));
        // 139 + eight digits, unique per case (73 939 133 is prime to 10^8).
        let phone = format!(
            "139{:08}",
            (i.wrapping_mul(73_939_133) + 12_345_678) % 100_000_000
        );
        let given = if d.chance(25) {
            d.pick(GIVEN).to_string()
        } else {
            format!("{}{}", d.pick(GIVEN), d.pick(GIVEN))
        };
        let full_name = format!("{}{given}", d.pick(SURNAMES));
        let sex = if d.chance(50) { Sex::Female } else { Sex::Male };
        let deceased = program.is_deceased_program();
        let email = d.chance(40).then(|| format!("donor{i}@example.org"));
        let address = d.chance(80).then(|| {
            format!(
                "浙江省宁波市{}{}{}号{}幢{}室",
                region.name,
                d.pick(ROADS),
                1 + d.below(400),
                1 + d.below(30),
                101 + d.below(20) * 100 + d.below(4)
            )
        });
        let hospital = d.chance(90).then(|| d.pick(HOSPITALS).to_string());
        let notes_from = if deceased { FAMILY_NOTES } else { DONOR_NOTES };
        let notes = d.chance(50).then(|| {
            (0..1 + d.below(2))
                .map(|_| d.pick(notes_from))
                .collect::<Vec<_>>()
                .join("")
        });
        // Registered on the day of the donation (a few cases a week or two later), in the
        // morning in China.
        let registered = donated + chrono::Days::new(if d.chance(20) { d.below(14) } else { 0 });
        let created_at = registered
            .min(today)
            .and_hms_opt(1, 0, 0)
            .map_or_else(Utc::now, |t| t.and_utc());
        Synthetic {
            program,
            region: region.code,
            created_at,
            donor: Donor {
                full_name,
                sex: Some(sex),
                birth_date: Some(birth),
                national_id: Some(national_id),
                phone: Some(phone),
                email,
                address,
                deceased,
                death_date: deceased.then_some(donated),
                language: None,
                timezone: None,
            },
            donation: Donation {
                date: donated,
                kind: d.pick(program.donation_kinds()).to_string(),
                hospital,
            },
            notes,
        }
    }

    pub fn new_case(&self) -> NewCase<'_> {
        NewCase {
            program: self.program,
            region: self.region,
            created_at: self.created_at,
            donor: &self.donor,
            donation: &self.donation,
            notes: self.notes.as_deref(),
        }
    }
}

/// The exact-match searches of the API, over what a synthetic donor holds.
#[derive(Clone, Copy, Debug)]
pub enum SearchKind {
    Phone,
    NationalId,
    Name,
}

impl SearchKind {
    pub const ALL: [SearchKind; 3] = [SearchKind::Phone, SearchKind::NationalId, SearchKind::Name];

    pub fn label(self) -> &'static str {
        match self {
            SearchKind::Phone => "phone",
            SearchKind::NationalId => "national_id",
            SearchKind::Name => "name",
        }
    }

    /// The API filter for `value`.
    pub fn filter(self, value: String) -> CaseFilter {
        let mut f = CaseFilter::default();
        match self {
            SearchKind::Phone => f.phone = Some(value),
            SearchKind::NationalId => f.national_id = Some(value),
            SearchKind::Name => f.name = Some(value),
        }
        f
    }

    /// The value of this kind that case `s` holds (every synthetic donor has all three).
    pub fn value_of(self, s: &Synthetic) -> String {
        let d = &s.donor;
        match self {
            SearchKind::Phone => d.phone.clone().unwrap_or_default(),
            SearchKind::NationalId => d.national_id.clone().unwrap_or_default(),
            SearchKind::Name => d.full_name.clone(),
        }
    }

    /// Whether a search for [`value_of`](Self::value_of) `s` that answered `donors` (and
    /// `more`, a further page) found case `s`.
    pub fn finds(self, s: &Synthetic, donors: &[Donor], more: bool) -> bool {
        match self {
            // Names repeat: every hit must carry the name, and one of them is this case
            // unless a full first page of namesakes came before it.
            SearchKind::Name => {
                donors.iter().all(|d| d.full_name == s.donor.full_name)
                    && (more || donors.contains(&s.donor))
            }
            _ => donors.contains(&s.donor),
        }
    }
}

/// A supervisor of `region` (not stored as an account: the domain calls take the actor).
pub fn supervisor_of(region: &str) -> Actor {
    Actor {
        user_id: format!("bench-supervisor-{region}"),
        username: format!("bench-supervisor-{region}"),
        role: Role::Supervisor,
        region: Some(region.into()),
        contact_id: None,
        must_enrol: false,
    }
}

/// A case as [`load_cases`] wrote it.
pub struct Loaded {
    pub id: String,
    pub created_by: String,
    /// The synthetic case number it was made from.
    pub number: u64,
}

/// The loader's own connection to the SQLite database at `url`: `synchronous=NORMAL` and a big
/// page cache only speed up the load; the benchmarks read and write through the store's pool
/// and settings.
pub async fn loader_pool(url: &str) -> Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        .pragma("cache_size", "-262144");
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?)
}

/// Seal cases `0..n` of `profile` on a separate thread and write them through `pool` (see
/// [`loader_pool`]) in transactions of [`LOAD_BATCH`] cases, each batch's `case.create` entries
/// appended to the audit chain after it. Creates one coordinator per region first.
pub async fn load_cases(
    svc: &Services,
    pool: &SqlitePool,
    n: u64,
    profile: Profile,
) -> Result<Vec<Loaded>> {
    let mut coordinators = Vec::new();
    for region in &REGIONS {
        let user = insert_user(
            svc,
            &format!("bench-coordinator-{}", region.code),
            Role::Coordinator,
            region.code,
            Utc::now(),
        )
        .await?;
        coordinators.push((region.code, user));
    }

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<SealedCase>>(4);
    let keys = Arc::clone(&svc.keys);
    let sealer = std::thread::spawn(move || -> Result<()> {
        let ring = keys.ring();
        let mut start = 0;
        while start < n {
            let end = (start + LOAD_BATCH).min(n);
            let batch = (start..end)
                .map(|i| {
                    let s = Synthetic::new(i, &profile);
                    let by = coordinators
                        .iter()
                        .find(|(r, _)| *r == s.region)
                        .map(|(_, actor)| actor)
                        .context("a synthetic case outside the known regions")?;
                    Ok(seal_case(&keys, &ring.index, s.new_case(), by, i))
                })
                .collect::<Result<Vec<_>>>()?;
            if tx.blocking_send(batch).is_err() {
                return Ok(()); // the writer failed and reports why
            }
            start = end;
        }
        Ok(())
    });

    let started = Instant::now();
    let mut written = 0u64;
    let mut loaded = Vec::with_capacity(n as usize);
    while let Some(batch) = rx.recv().await {
        write_batch(pool, &batch).await?;
        written += batch.len() as u64;
        let mut audit = Vec::with_capacity(batch.len());
        for c in batch {
            loaded.push(Loaded {
                id: c.row.id,
                created_by: c.row.created_by,
                number: c.number,
            });
            audit.push(c.audit);
        }
        svc.store.append_audit(&audit).await?;
        if written % PROGRESS_EVERY == 0 || written == n {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "  {written:>8} / {n} cases  {secs:>6.1} s  {:>6.0} cases/s",
                written as f64 / secs
            );
        }
    }
    match sealer.join() {
        Ok(sealed) => sealed?,
        Err(_) => bail!("the sealing thread panicked"),
    }
    ensure!(written == n, "wrote {written} cases, expected {n}");
    Ok(loaded)
}

/// A new recovery identity written to `path` (as an operator keeps one offline), its recipient
/// added to the keyring: what `donorcare restore --identity` opens a backup with.
pub async fn add_recovery_recipient(svc: &Services, path: &Path) -> Result<()> {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    std::fs::write(path, format!("{}\n", id.to_string().expose_secret()))
        .with_context(|| format!("writing {}", path.display()))?;
    let mut recipients = svc.keys.current_recipients()?;
    recipients.push(id.to_public().to_string());
    svc.keys.set_recipients(recipients).await?;
    Ok(())
}

/// Fold the write-ahead log into the database file and close everything, so the folder can be
/// copied or backed up.
pub async fn finish_load(svc: &Services, loader: SqlitePool) -> Result<()> {
    sqlx::query("pragma wal_checkpoint(truncate)")
        .execute(&loader)
        .await?;
    loader.close().await;
    svc.store.checkpoint().await?;
    svc.store.close().await;
    Ok(())
}

/// What `complete.json` records once a data set is fully built.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
pub struct Marker {
    /// The bench's name for the data set, with the version of what it adds to the cases.
    pub kind: String,
    pub cases: u64,
    pub tasks: u64,
    pub generator: u32,
}

impl Marker {
    pub fn new(kind: &str, cases: u64, tasks: u64) -> Self {
        Marker {
            kind: kind.into(),
            cases,
            tasks,
            generator: GENERATOR_VERSION,
        }
    }

    /// Whether `dir` holds a complete data set of this description.
    pub fn is_in(&self, dir: &Path) -> bool {
        std::fs::read(dir.join("complete.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Marker>(&b).ok())
            .as_ref()
            == Some(self)
    }

    /// Mark `dir` complete: the last step of building it.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        let path = dir.join("complete.json");
        std::fs::write(&path, serde_json::to_vec(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Whether `dir` holds a complete data set as `want` describes it: its marker, and as many
/// cases and tasks as the marker says.
pub async fn is_kept(dir: &Path, want: &Marker) -> Result<bool> {
    if !want.is_in(dir) {
        return Ok(false);
    }
    let url = format!("sqlite://{}", dir.join("donorcare.db").display());
    let pool = SqlitePool::connect(&url).await?;
    let (cases,): (i64,) = sqlx::query_as("select count(*) from cases")
        .fetch_one(&pool)
        .await?;
    let (tasks,): (i64,) = sqlx::query_as("select count(*) from tasks")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    let kept = u64::try_from(cases).ok() == Some(want.cases)
        && u64::try_from(tasks).ok() == Some(want.tasks);
    if kept {
        println!(
            "reusing the data set in {} ({cases} cases, {tasks} tasks)",
            dir.display()
        );
    } else {
        println!(
            "{}: holds {cases} cases and {tasks} tasks: rebuilding",
            dir.display()
        );
    }
    Ok(kept)
}

/// A new data set in `dir` (emptied first) of cases `0..n` of `profile`: the services on it,
/// the loader's pool (open, for what a bench adds; [`finish_load`] closes both) and the cases.
pub async fn build_cases(
    dir: &Path,
    n: u64,
    profile: Profile,
) -> Result<(Services, SqlitePool, Vec<Loaded>)> {
    fresh_dir(dir)?;
    println!("building the data set in {} ({n} cases)", dir.display());
    let (svc, url) = super::services_in(dir).await?;
    let started = Instant::now();
    let loader = loader_pool(&url).await?;
    let loaded = load_cases(&svc, &loader, n, profile).await?;
    let took = started.elapsed();
    println!(
        "built {n} cases in {:.1} s ({:.0} cases/s{})",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        super::load_average()
    );
    Ok((svc, loader, loaded))
}

/// An empty folder at `dir`, removing whatever was there.
pub fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// A copy of the data set in `kept` (database and keys, not its marker or backups) in a new temporary
/// folder under `target/bench-data/` named `<prefix>…`, removed when dropped: for a run that
/// changes what it works on.
pub fn fresh_copy(kept: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let base = super::target_dir().join("bench-data");
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .with_context(|| format!("creating a folder in {}", base.display()))?;
    // The last connection of the check that the data set is complete may still be folding the
    // write-ahead log into the database: copy once it has finished (it removes the log).
    let wal = kept.join("donorcare.db-wal");
    let waiting = Instant::now();
    while wal.exists() && waiting.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    copy_dir(kept, dir.path())?;
    Ok(dir)
}

/// A backup kept beside a data set (`benches/scale.rs`) is not part of a working copy.
fn is_backup(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "age")
}

fn is_wal(p: &Path) -> bool {
    p.to_string_lossy().ends_with("-wal") || p.to_string_lossy().ends_with("-shm")
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if entry.file_name() != "complete.json" && !is_backup(&target) {
            match std::fs::copy(entry.path(), &target) {
                Ok(_) => {}
                // The write-ahead log of a database just closed (by the check of a kept data
                // set) is folded into the database and removed by SQLite's last connection,
                // which may finish just after `close` returns: it is not needed then.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_wal(&target) => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("copying {}", entry.path().display()))
                }
            }
            // On disk before any clock starts, so the kernel's write-back of the copy does not
            // compete with the timed pass.
            std::fs::File::open(&target)?.sync_all()?;
        }
    }
    Ok(())
}
