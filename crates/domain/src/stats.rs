//! Statistics rules free of I/O: local time buckets and the grouping vocabulary.

use crate::{Invalid, Millis};
use chrono::{Datelike, NaiveDate, TimeZone, Timelike};

/// Where a moment falls in an outlet's local calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalParts {
    /// `YYYY-MM-DD`
    pub day: String,
    /// `YYYY-MM-01`
    pub month: String,
    pub hour: i64,
    /// Starts of the local hour, day and month in UTC ms.
    pub hour_start: Millis,
    pub day_start: Millis,
    pub month_start: Millis,
}

fn tz(timezone: &str) -> chrono_tz::Tz {
    timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai)
}

/// UTC ms of local midnight starting `date` in `timezone` (the earliest, across a DST change).
pub fn local_midnight(timezone: &str, date: NaiveDate) -> Millis {
    let tz = tz(timezone);
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
        })
        .map_or(0, |t| t.timestamp_millis())
}

pub fn local_parts(timezone: &str, at: Millis) -> LocalParts {
    let tz = tz(timezone);
    let local = tz
        .timestamp_millis_opt(at)
        .single()
        .unwrap_or_else(|| tz.timestamp_millis_opt(0).unwrap());
    let date = local.date_naive();
    let first = date.with_day(1).expect("day 1 exists");
    let hour = i64::from(local.hour());
    let hour_start = at
        - i64::from(local.minute()) * 60_000
        - i64::from(local.second()) * 1000
        - i64::from(local.timestamp_subsec_millis());
    LocalParts {
        day: date.format("%Y-%m-%d").to_string(),
        month: first.format("%Y-%m-%d").to_string(),
        hour,
        hour_start,
        day_start: local_midnight(timezone, date),
        month_start: local_midnight(timezone, first),
    }
}

/// How a statistics answer is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The requested org's children (each row: a child and its subtree).
    Org,
    Outlet,
    Window,
    Staff,
    BusinessType,
    Hour,
    Day,
    Week,
    Month,
    Weekday,
    WeekdayHour,
    None,
}

impl GroupBy {
    pub const ALL: [GroupBy; 12] = [
        GroupBy::Org,
        GroupBy::Outlet,
        GroupBy::Window,
        GroupBy::Staff,
        GroupBy::BusinessType,
        GroupBy::Hour,
        GroupBy::Day,
        GroupBy::Week,
        GroupBy::Month,
        GroupBy::Weekday,
        GroupBy::WeekdayHour,
        GroupBy::None,
    ];

    pub fn code(self) -> &'static str {
        match self {
            GroupBy::Org => "org",
            GroupBy::Outlet => "outlet",
            GroupBy::Window => "window",
            GroupBy::Staff => "staff",
            GroupBy::BusinessType => "business_type",
            GroupBy::Hour => "hour",
            GroupBy::Day => "day",
            GroupBy::Week => "week",
            GroupBy::Month => "month",
            GroupBy::Weekday => "weekday",
            GroupBy::WeekdayHour => "weekday_hour",
            GroupBy::None => "none",
        }
    }

    pub fn parse(s: &str) -> Result<GroupBy, Invalid> {
        GroupBy::ALL
            .into_iter()
            .find(|g| g.code() == s)
            .ok_or_else(|| {
                Invalid::new(
                    "group_by",
                    "unknown_group_by",
                    format!(
                        "unknown group_by '{s}': use one of {}",
                        GroupBy::ALL.map(|g| g.code()).join(", ")
                    ),
                )
            })
    }

    /// Whether the answer needs hour buckets.
    pub fn needs_hours(self) -> bool {
        matches!(self, GroupBy::Hour | GroupBy::WeekdayHour)
    }
}

/// The longest range one request may cover: 20 years (there is no one-year cap).
pub const MAX_RANGE_DAYS: i64 = 366 * 20;

pub fn parse_date(field: &str, s: &str) -> Result<NaiveDate, Invalid> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        Invalid::new(
            field,
            "invalid_date",
            format!("{field} '{s}' is not a date YYYY-MM-DD"),
        )
    })
}

/// Checks a requested range: not reversed, not longer than [`MAX_RANGE_DAYS`].
pub fn check_range(from: NaiveDate, to: NaiveDate) -> Result<(), Invalid> {
    if to < from {
        return Err(Invalid::new(
            "to",
            "reversed_range",
            format!("the range is reversed: to ({to}) is before from ({from})"),
        ));
    }
    if (to - from).num_days() + 1 > MAX_RANGE_DAYS {
        return Err(Invalid::new(
            "to",
            "range_too_long",
            format!(
                "the range covers {} days; at most {MAX_RANGE_DAYS} (20 years) are allowed",
                (to - from).num_days() + 1
            ),
        ));
    }
    Ok(())
}

/// The period of the same length just before `from..=to`.
pub fn previous_period(from: NaiveDate, to: NaiveDate) -> (NaiveDate, NaiveDate) {
    let len = (to - from).num_days() + 1;
    (
        from - chrono::Duration::days(len),
        from - chrono::Duration::days(1),
    )
}

/// The same dates a year earlier (29 February becomes the 28th).
pub fn last_year(from: NaiveDate, to: NaiveDate) -> (NaiveDate, NaiveDate) {
    let back = |d: NaiveDate| {
        d.checked_sub_months(chrono::Months::new(12))
            .unwrap_or(d - chrono::Duration::days(365))
    };
    (back(from), back(to))
}

/// The Monday starting the ISO week of `date`.
pub fn week_start(date: NaiveDate) -> NaiveDate {
    date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shanghai_midnight_is_16_utc() {
        // 2026-03-01 00:00 +08:00 = 2026-02-28 16:00 UTC
        let at = chrono::DateTime::parse_from_rfc3339("2026-02-28T16:00:00Z")
            .unwrap()
            .timestamp_millis();
        let p = local_parts("Asia/Shanghai", at);
        assert_eq!(p.day, "2026-03-01");
        assert_eq!(p.month, "2026-03-01");
        assert_eq!(p.hour, 0);
        assert_eq!(p.day_start, at);
        let p = local_parts("Asia/Shanghai", at - 1);
        assert_eq!(p.day, "2026-02-28");
        assert_eq!(p.hour, 23);
        assert_eq!(p.hour_start, at - 3_600_000);
    }

    #[test]
    fn periods() {
        let d = |s| parse_date("d", s).unwrap();
        assert_eq!(
            previous_period(d("2026-03-01"), d("2026-03-31")),
            (d("2026-01-29"), d("2026-02-28"))
        );
        assert_eq!(
            last_year(d("2024-02-29"), d("2024-03-01")),
            (d("2023-02-28"), d("2023-03-01"))
        );
        assert!(check_range(d("2026-03-02"), d("2026-03-01")).is_err());
        assert_eq!(week_start(d("2026-11-22")), d("2026-11-16"));
    }
}
