//! The dates that follow a stem-cell collection (DESIGN.md, "Programs and the care they
//! need"): how long the donor may not give blood, and the two years in which their patient may
//! need them again. One place for both, so the care plan's rules, the messages that name the
//! dates and the case page never disagree.

use chrono::{Months, NaiveDate};

/// Months a donor may not give blood after a collection: 12 after a bone-marrow harvest (under
/// anaesthesia, with more blood lost), 6 after an apheresis (PBSC, or lymphocytes).
pub fn blood_deferral_months(kind: &str) -> u32 {
    if kind == "marrow" {
        12
    } else {
        6
    }
}

/// The first day the donor may give blood again.
pub fn blood_until(kind: &str, donation: NaiveDate) -> NaiveDate {
    donation
        .checked_add_months(Months::new(blood_deferral_months(kind)))
        .unwrap_or(donation)
}

/// How long after a first donation its patient may need the donor again (a second stem-cell
/// collection or lymphocytes).
pub const SECOND_WINDOW_YEARS: u32 = 2;

/// The donation kinds a second-donation window follows: a first collection. A lymphocyte
/// donation is itself the second one.
pub const FIRST_COLLECTIONS: &[&str] = &["pbsc", "marrow"];

/// The donation kinds whose blood-donation deferral lasts `months`.
pub fn kinds_deferred_for(months: u32) -> Vec<String> {
    crate::domain::types::Program::Marrow
        .donation_kinds()
        .iter()
        .filter(|k| blood_deferral_months(k) == months)
        .map(|k| k.to_string())
        .collect()
}

/// The day the second-donation window closes (the window runs from the donation to it); `None`
/// for a donation that opens no window.
pub fn second_window_closes(kind: &str, donation: NaiveDate) -> Option<NaiveDate> {
    FIRST_COLLECTIONS
        .contains(&kind)
        .then(|| donation.checked_add_months(Months::new(SECOND_WINDOW_YEARS * 12)))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_marrow_harvest_defers_blood_for_a_year_an_apheresis_for_six_months() {
        assert_eq!(blood_until("marrow", d("2026-03-14")), d("2027-03-14"));
        assert_eq!(blood_until("pbsc", d("2026-03-14")), d("2026-09-14"));
        assert_eq!(blood_until("lymphocytes", d("2026-03-14")), d("2026-09-14"));
    }

    #[test]
    fn month_ends_clamp() {
        assert_eq!(blood_until("pbsc", d("2026-08-31")), d("2027-02-28"));
        assert_eq!(blood_until("marrow", d("2028-02-29")), d("2029-02-28"));
        assert_eq!(
            second_window_closes("pbsc", d("2028-02-29")),
            Some(d("2030-02-28"))
        );
    }

    #[test]
    fn the_second_donation_window_follows_a_first_collection_for_two_years() {
        assert_eq!(
            second_window_closes("marrow", d("2026-03-14")),
            Some(d("2028-03-14"))
        );
        assert_eq!(
            second_window_closes("pbsc", d("2026-03-14")),
            Some(d("2028-03-14"))
        );
        assert_eq!(second_window_closes("lymphocytes", d("2026-03-14")), None);
    }

    #[test]
    fn every_marrow_kind_has_one_deferral() {
        let mut all: Vec<String> = [6, 12].into_iter().flat_map(kinds_deferred_for).collect();
        all.sort();
        assert_eq!(all, ["lymphocytes", "marrow", "pbsc"]);
    }
}
