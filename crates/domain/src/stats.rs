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

/// The local date and time of a UTC moment in `timezone`.
pub fn local_datetime(timezone: &str, at: Millis) -> chrono::NaiveDateTime {
    let tz = tz(timezone);
    tz.timestamp_millis_opt(at)
        .single()
        .map_or_else(chrono::NaiveDateTime::default, |t| t.naive_local())
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

/// Upper edges (seconds) of the handling-time histogram kept in the roll-ups; the last bucket
/// holds everything from 7,200 s up. Percentiles read from it are rounded **up** to the edge of
/// the bucket holding them: a p90 of 180 means "90 % of services took at most 180 s, and the
/// 90th-percentile service took more than 120 s". The error is at most the bucket's width
/// (30 s up to 2 minutes, 60 s up to 5 minutes, then wider).
pub const HANDLE_BUCKETS: [i64; 16] = [
    30,
    60,
    90,
    120,
    180,
    240,
    300,
    420,
    600,
    900,
    1200,
    1800,
    2700,
    3600,
    7200,
    i64::MAX,
];

/// The histogram bucket of a handling time in milliseconds (a time on an edge belongs below it).
pub fn handle_bucket(ms: Millis) -> usize {
    let ms = ms.max(0);
    HANDLE_BUCKETS
        .iter()
        .position(|&edge| edge == i64::MAX || ms <= edge * 1000)
        .unwrap_or(HANDLE_BUCKETS.len() - 1)
}

/// The `q` quantile (0–1, nearest rank) of a histogram, as the upper edge of its bucket in
/// seconds; the open last bucket answers its lower edge (7,200). None when empty.
pub fn histogram_quantile(hist: &[i64], q: f64) -> Option<f64> {
    let n: i64 = hist.iter().sum();
    if n <= 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (i, c) in hist.iter().enumerate() {
        seen += c;
        if seen >= rank {
            let edge = HANDLE_BUCKETS[i.min(HANDLE_BUCKETS.len() - 1)];
            return Some(if edge == i64::MAX {
                HANDLE_BUCKETS[HANDLE_BUCKETS.len() - 2] as f64
            } else {
                edge as f64
            });
        }
    }
    None
}

/// A prompt counts as offered (提示覆盖率) unless the clerk cut it short: the next Start at the
/// window came less than this long after the End that opened it, so the customer had no time to
/// answer. Prompts that ran their course count whether rated or not.
pub const MIN_PROMPT_MS: Millis = 3_000;

/// Whether a prompt opened at `ended_at` was offered, given the window's next Start (if any).
pub fn prompt_offered(ended_at: Millis, next_start: Option<Millis>) -> bool {
    next_start.is_none_or(|s| s < ended_at || s - ended_at >= MIN_PROMPT_MS)
}

/// The pieces of `start..end` within each local hour: (piece start, length in ms).
pub fn hour_pieces(timezone: &str, start: Millis, end: Millis) -> Vec<(Millis, Millis)> {
    let mut out = Vec::new();
    let mut t = start;
    while t < end {
        let p = local_parts(timezone, t);
        let mut next = p.hour_start + 3_600_000;
        if next <= t {
            next = t + 3_600_000;
        }
        let next = next.min(end);
        out.push((t, next - t));
        t = next;
    }
    out
}

/// The period presets of the statistics page: each runs from its first day up to `today`
/// (inclusive), so the previous period compared with it has the same length.
pub const PRESETS: [&str; 5] = ["today", "week", "month", "quarter", "year"];

/// The range of a preset, or None for an unknown one.
pub fn preset_range(preset: &str, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    let first = match preset {
        "today" => today,
        "week" => week_start(today),
        "month" => today.with_day(1)?,
        "quarter" => NaiveDate::from_ymd_opt(today.year(), (today.month0() / 3) * 3 + 1, 1)?,
        "year" => NaiveDate::from_ymd_opt(today.year(), 1, 1)?,
        _ => return None,
    };
    Some((first, today))
}

/// Today's date in a time zone.
pub fn today_in(timezone: &str, now: Millis) -> NaiveDate {
    let p = local_parts(timezone, now);
    NaiveDate::parse_from_str(&p.day, "%Y-%m-%d").unwrap_or_default()
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

    #[test]
    fn presets() {
        let d = |s| parse_date("d", s).unwrap();
        let today = d("2026-11-22");
        assert_eq!(preset_range("today", today), Some((today, today)));
        assert_eq!(preset_range("week", today), Some((d("2026-11-16"), today)));
        assert_eq!(preset_range("month", today), Some((d("2026-11-01"), today)));
        assert_eq!(
            preset_range("quarter", today),
            Some((d("2026-10-01"), today))
        );
        assert_eq!(preset_range("year", today), Some((d("2026-01-01"), today)));
        assert_eq!(preset_range("decade", today), None);
    }

    #[test]
    fn histogram() {
        assert_eq!(handle_bucket(0), 0);
        assert_eq!(handle_bucket(30_000), 0);
        assert_eq!(handle_bucket(30_001), 1);
        assert_eq!(handle_bucket(10_000_000), 15);
        let mut h = [0i64; 16];
        assert_eq!(histogram_quantile(&h, 0.9), None);
        // 10 services: 9 of at most 30 s, one of 100 s: rank 9 is in the first bucket
        h[0] = 9;
        h[3] = 1;
        assert_eq!(histogram_quantile(&h, 0.9), Some(30.0));
        h[0] = 8;
        h[15] = 1;
        assert_eq!(histogram_quantile(&h, 0.9), Some(120.0));
        assert_eq!(histogram_quantile(&h, 1.0), Some(7200.0));
    }

    #[test]
    fn prompts_and_pieces() {
        assert!(prompt_offered(1000, None));
        assert!(!prompt_offered(1000, Some(3999)));
        assert!(prompt_offered(1000, Some(4000)));
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-01T01:30:00Z")
            .unwrap()
            .timestamp_millis();
        let p = hour_pieces("Asia/Shanghai", t, t + 2 * 3_600_000);
        assert_eq!(
            p,
            vec![
                (t, 1_800_000),
                (t + 1_800_000, 3_600_000),
                (t + 5_400_000, 1_800_000)
            ]
        );
    }
}
