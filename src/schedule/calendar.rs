//! Calendars: the Chinese lunisolar calendar (ICU4X `icu_calendar`, China's GB/T 33661-2017
//! rules), the solar term Qingming (`tyme4rs`, the ShouXing ephemeris), Gregorian anniversaries,
//! and turning a local wall-clock time in a family's zone into an instant.
//!
//! Nothing here is a hand-typed table; the tests compare against published ones.

use calendrical_calculations::rata_die::RataDie;
use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use icu_calendar::cal::ChineseTraditional;
use icu_calendar::types::Month;
use icu_calendar::Date;

/// A date of the Chinese calendar. `year` is the Gregorian year in which the lunar year begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LunarDate {
    pub year: i32,
    pub month: u8,
    pub leap: bool,
    pub day: u8,
}

fn rata_die(date: NaiveDate) -> RataDie {
    RataDie::new(i64::from(date.num_days_from_ce()))
}

fn from_rata_die(rd: RataDie) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(rd.to_i64_date()).ok()?)
}

/// The Chinese date of a Gregorian date.
pub fn lunar_of(date: NaiveDate) -> LunarDate {
    let d = Date::from_rata_die(rata_die(date), ChineseTraditional::new());
    let m = d.month();
    LunarDate {
        year: d.year().extended_year(),
        month: m.number(),
        leap: m.to_input().is_leap(),
        day: d.day_of_month().0,
    }
}

/// The Gregorian date of an exact Chinese date, or `None` if that year has no such day.
pub fn from_lunar(l: LunarDate) -> Option<NaiveDate> {
    let month = if l.leap {
        Month::leap(l.month)
    } else {
        Month::new(l.month)
    };
    let d = Date::try_new_chinese_traditional(l.year, month, l.day).ok()?;
    from_rata_die(d.to_rata_die())
}

/// The Gregorian date of `month`/`day` (not leap) in the lunar year beginning in `year`.
pub fn lunar_day(year: i32, month: u8, day: u8) -> Option<NaiveDate> {
    from_lunar(LunarDate {
        year,
        month,
        leap: false,
        day,
    })
}

/// The yearly return of a lunar date in the lunar year beginning in `year`. A leap month the year
/// lacks falls back to the ordinary month of that number (the nearest earlier day), and a 30th
/// day a short month lacks falls back to the 29th.
pub fn lunar_anniversary(of: LunarDate, year: i32) -> Option<NaiveDate> {
    let mut candidates = Vec::with_capacity(4);
    for leap in [of.leap, false] {
        for day in [of.day, of.day.saturating_sub(1)] {
            candidates.push(LunarDate {
                year,
                month: of.month,
                leap,
                day,
            });
        }
    }
    candidates
        .into_iter()
        .filter(|c| c.day >= 1)
        .find_map(from_lunar)
}

/// The yearly return of a Gregorian date in `year`; 29 February falls back to 28 February.
pub fn gregorian_anniversary(of: NaiveDate, year: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, of.month(), of.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, of.month(), of.day().saturating_sub(1)))
}

/// Spring Festival (春节): lunar 1/1 of the lunar year beginning in `year`.
pub fn spring_festival(year: i32) -> Option<NaiveDate> {
    lunar_day(year, 1, 1)
}

/// Qingming (清明): the day, in China Standard Time, on which the sun reaches 15° ecliptic
/// longitude. Computed by the ShouXing ephemeris of `tyme4rs`.
pub fn qingming(year: i32) -> Option<NaiveDate> {
    let term = tyme4rs::tyme::solar::SolarTerm::new(year as isize, "清明").ok()?;
    let day = term.get_solar_day();
    let month = day.get_solar_month();
    NaiveDate::from_ymd_opt(
        i32::try_from(month.get_year()).ok()?,
        u32::try_from(month.get_month()).ok()?,
        u32::try_from(day.get_day()).ok()?,
    )
}

/// The festivals a care plan can name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Festival {
    /// 清明, a solar term in early April.
    Qingming,
    /// 春节, lunar 1/1.
    SpringFestival,
    /// 中元, lunar 7/15.
    Zhongyuan,
    /// 寒衣, lunar 10/1.
    Hanyi,
    /// 中秋, lunar 8/15.
    MidAutumn,
}

impl Festival {
    pub const ALL: [Festival; 5] = [
        Festival::Qingming,
        Festival::SpringFestival,
        Festival::Zhongyuan,
        Festival::Hanyi,
        Festival::MidAutumn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Festival::Qingming => "qingming",
            Festival::SpringFestival => "spring_festival",
            Festival::Zhongyuan => "zhongyuan",
            Festival::Hanyi => "hanyi",
            Festival::MidAutumn => "mid_autumn",
        }
    }

    pub fn parse(s: &str) -> Option<Festival> {
        Festival::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The festival's Gregorian date in `year`. The lunar festivals all fall in the lunar year
    /// that begins in the same Gregorian year.
    pub fn date(self, year: i32) -> Option<NaiveDate> {
        match self {
            Festival::Qingming => qingming(year),
            Festival::SpringFestival => spring_festival(year),
            Festival::Zhongyuan => lunar_day(year, 7, 15),
            Festival::Hanyi => lunar_day(year, 10, 1),
            Festival::MidAutumn => lunar_day(year, 8, 15),
        }
    }
}

/// The traditional mourning days counted from a death: 头七 … 百日 (the day of death is day 1,
/// so 头七 is six days after it), then the first and third anniversaries.
pub const MOURNING_DAYS: [i64; 5] = [7, 21, 35, 49, 100];

/// The date of mourning day `n` (counted with the day of death as day 1).
pub fn mourning_day(death: NaiveDate, n: i64) -> NaiveDate {
    death + Duration::days(n - 1)
}

/// The instant at which the wall clock in `tz` shows `time` on `date`. A time skipped by a
/// daylight-saving change moves forward by the gap (02:30 on a spring-forward night becomes
/// 03:30); a time that occurs twice takes the first. Either way exactly one instant.
pub fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    local_to_utc(tz, date.and_time(time))
}

pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: read the clock with the offset in force just before it, which lands the
            // same distance past the change (02:30 EST on a spring-forward night is 03:30 EDT).
            let before = tz
                .offset_from_local_datetime(&(local - Duration::hours(3)))
                .earliest()
                .map(|o| o.fix().local_minus_utc())
                .unwrap_or(0);
            Utc.from_utc_datetime(&(local - Duration::seconds(i64::from(before))))
        }
    }
}

/// Every wall-clock time matched by `schedule` in `tz` whose instant falls in `[from, to)`, with
/// that instant. The schedule is walked on the local clock, so a job fires once on a change day:
/// a skipped time fires at the moved-forward instant, a repeated time only on its first pass.
pub fn cron_occurrences(
    schedule: &cron::Schedule,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Vec<(NaiveDateTime, DateTime<Utc>)> {
    // Walk local times as if they were UTC: each wall-clock time appears once.
    let start_local = from.with_timezone(&tz).naive_local() - Duration::hours(3);
    let end_local = to.with_timezone(&tz).naive_local() + Duration::hours(3);
    let mut out = Vec::new();
    for t in schedule.after(&Utc.from_utc_datetime(&start_local)) {
        let local = t.naive_utc();
        if local > end_local || out.len() >= limit {
            break;
        }
        let at = local_to_utc(tz, local);
        if at >= from && at < to {
            out.push((local, at));
        }
    }
    out
}

/// Today's date in `tz`.
pub fn local_date(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// Every Spring Festival and Qingming 2000–2100 against the Hong Kong Observatory's published
    /// tables (sources and cross-checks in the data file's header).
    #[test]
    fn spring_festival_and_qingming_match_the_published_table_2000_to_2100() {
        let table = include_str!("../../tests/data/chinese_calendar_2000_2100.tsv");
        let mut years = 0;
        for line in table
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("year"))
        {
            let cols: Vec<&str> = line.split('\t').collect();
            let year: i32 = cols[0].parse().unwrap();
            assert_eq!(
                spring_festival(year),
                Some(d(cols[1])),
                "Spring Festival {year}"
            );
            assert_eq!(qingming(year), Some(d(cols[2])), "Qingming {year}");
            years += 1;
        }
        assert_eq!(years, 101);
    }

    #[test]
    fn lunar_round_trip_and_known_dates() {
        assert_eq!(spring_festival(2025), Some(d("2025-01-29")));
        assert_eq!(spring_festival(2024), Some(d("2024-02-10")));
        // Mid-Autumn 2025 was 6 October; Zhongyuan 2025 on 6 September.
        assert_eq!(Festival::MidAutumn.date(2025), Some(d("2025-10-06")));
        assert_eq!(Festival::Zhongyuan.date(2025), Some(d("2025-09-06")));
        let l = lunar_of(d("2025-10-06"));
        assert_eq!((l.year, l.month, l.leap, l.day), (2025, 8, false, 15));
        for day in 0..800 {
            let g = d("2024-01-01") + Duration::days(day);
            assert_eq!(from_lunar(lunar_of(g)), Some(g));
        }
    }

    #[test]
    fn leap_month_and_short_month_fall_back_to_the_nearest_earlier_day() {
        // 2025 had a leap sixth month (闰六月), beginning 25 July 2025.
        let leap = lunar_of(d("2025-08-01"));
        assert!(leap.leap);
        assert_eq!(leap.month, 6);
        // 2026 has no leap sixth month: the anniversary falls on the ordinary sixth month's day.
        let next = lunar_anniversary(leap, 2026).unwrap();
        let l = lunar_of(next);
        assert_eq!((l.month, l.leap, l.day), (6, false, leap.day));
        // A 30th day in a year whose month has 29 days falls back to the 29th.
        let mut found = false;
        for y in 2026..2040 {
            for m in 1..=12u8 {
                if lunar_day(y, m, 30).is_none() {
                    let thirtieth = LunarDate {
                        year: 2024,
                        month: m,
                        leap: false,
                        day: 30,
                    };
                    let got = lunar_anniversary(thirtieth, y).unwrap();
                    assert_eq!(got, lunar_day(y, m, 29).unwrap());
                    found = true;
                }
            }
        }
        assert!(found);
    }

    #[test]
    fn february_29th_falls_back_in_common_years() {
        let born = d("2024-02-29");
        assert_eq!(gregorian_anniversary(born, 2025), Some(d("2025-02-28")));
        assert_eq!(gregorian_anniversary(born, 2028), Some(d("2028-02-29")));
    }

    #[test]
    fn local_times_exist_once_across_daylight_saving_changes() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let nine = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        // 8 March 2026: 02:30 does not exist in New York; it becomes 03:30 EDT = 07:30 UTC.
        let t = local_instant(ny, d("2026-03-08"), nine);
        assert_eq!(t.to_rfc3339(), "2026-03-08T07:30:00+00:00");
        // 1 November 2026: 01:30 happens twice; the first (EDT) is taken.
        let t = local_instant(
            ny,
            d("2026-11-01"),
            NaiveTime::from_hms_opt(1, 30, 0).unwrap(),
        );
        assert_eq!(t.to_rfc3339(), "2026-11-01T05:30:00+00:00");
    }

    #[test]
    fn cron_fires_once_on_change_days() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let s: cron::Schedule = "0 30 1,2 * * * *".parse().unwrap();
        let from = Utc.with_ymd_and_hms(2026, 3, 7, 12, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap();
        let got = cron_occurrences(&s, ny, from, to, 100);
        let times: Vec<String> = got.iter().map(|(_, t)| t.to_rfc3339()).collect();
        // 8 March: 01:30 EST = 06:30Z; 02:30 is skipped and fires at 03:30 EDT = 07:30Z; once each.
        assert_eq!(
            times,
            [
                "2026-03-08T06:30:00+00:00",
                "2026-03-08T07:30:00+00:00",
                "2026-03-09T05:30:00+00:00",
                "2026-03-09T06:30:00+00:00"
            ]
        );
        let from = Utc.with_ymd_and_hms(2026, 10, 31, 12, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let got = cron_occurrences(&s, ny, from, to, 100);
        let times: Vec<String> = got.iter().map(|(_, t)| t.to_rfc3339()).collect();
        // 1 November: 01:30 happens twice (fires on the first, EDT) and 02:30 EST once.
        assert_eq!(
            times,
            ["2026-11-01T05:30:00+00:00", "2026-11-01T07:30:00+00:00"]
        );
    }
}
