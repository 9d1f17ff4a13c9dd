//! Data management (数据清理 / 数据备份): which raw evaluation rows a cleanup removes, and the
//! retention setting that removes them on schedule.
//!
//! A cleanup removes *raw* rows (presses, ratings and the follow-ups that hang on them, services,
//! duty sessions) older than a cut-off, within one org subtree. What it keeps:
//! - roll-ups (unless asked otherwise): long-range statistics stay as they were;
//! - ratings whose follow-up item is still open (someone still has to close it);
//! - services and duty sessions still in progress.
//!
//! The cut-off falls on a local midnight of the org's time zone, so whole days go and no day's
//! figures are left half there.

use crate::validate::Invalid;
use crate::Millis;
use chrono::{Months, TimeZone};
use serde::{Deserialize, Serialize};

/// How old raw data must be to go (数据清理: 一个月以前 / 一年以前 / 全部).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OlderThan {
    /// Older than one month.
    Month,
    /// Older than one year.
    Year,
    /// Everything up to now.
    All,
}

impl OlderThan {
    pub const ALL: [OlderThan; 3] = [Self::Month, Self::Year, Self::All];

    pub fn code(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
            Self::All => "all",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|o| o.code() == s)
            .ok_or_else(|| {
                Invalid::new(
                    field,
                    "invalid_choice",
                    format!("{field} must be month, year or all, not '{s}'"),
                )
            })
    }

    /// Rows older than the answer go: local midnight `months` ago, or now for `all`.
    pub fn cutoff(self, timezone: &str, now: Millis) -> Millis {
        match self {
            Self::Month => months_ago(timezone, now, 1),
            Self::Year => months_ago(timezone, now, 12),
            Self::All => now,
        }
    }
}

/// The first local midnight on the calendar day `months` before `now` in `timezone`
/// (31 March minus one month is 28/29 February).
pub fn months_ago(timezone: &str, now: Millis, months: u32) -> Millis {
    let tz: chrono_tz::Tz = timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    let Some(local) = tz.timestamp_millis_opt(now).single() else {
        return now;
    };
    let day = local
        .date_naive()
        .checked_sub_months(Months::new(months))
        .unwrap_or(chrono::NaiveDate::MIN);
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .earliest()
        .map_or(now, |t| t.timestamp_millis())
}

/// The longest retention one may set: 50 years.
pub const MAX_KEEP_MONTHS: u32 = 600;

/// The retention setting of an org (inherited down the tree): keep raw evaluation data this many
/// months, then a background worker removes it. `None` switches retention off here and below,
/// which is also the default where no org sets anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Retention {
    pub keep_months: Option<u32>,
}

impl Retention {
    pub fn validate(&self) -> Result<(), Invalid> {
        match self.keep_months {
            Some(m) if m == 0 || m > MAX_KEEP_MONTHS => Err(Invalid::new(
                "keep_months",
                "out_of_range",
                format!("keep_months must be between 1 and {MAX_KEEP_MONTHS}, not {m}; use null to keep data for ever"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-31 10:00 +08:00
    const NOW: Millis = 1_774_922_400_000;

    #[test]
    fn cutoffs_fall_on_local_midnight() {
        // 2026-02-28 00:00 +08:00 = 2026-02-27 16:00 UTC (31 March minus a month is 28 February)
        assert_eq!(
            OlderThan::Month.cutoff("Asia/Shanghai", NOW),
            1_772_208_000_000
        );
        // 2025-03-31 00:00 +08:00
        assert_eq!(
            OlderThan::Year.cutoff("Asia/Shanghai", NOW),
            1_743_350_400_000
        );
        assert_eq!(OlderThan::All.cutoff("Asia/Shanghai", NOW), NOW);
        // in UTC the same moment is still 31 March, 02:00: the cut-off is UTC midnight
        assert_eq!(months_ago("UTC", NOW, 12), 1_743_379_200_000);
    }

    #[test]
    fn choices_and_retention_limits() {
        assert_eq!(OlderThan::parse("older_than", "year"), Ok(OlderThan::Year));
        assert_eq!(
            OlderThan::parse("older_than", "week").unwrap_err().code,
            "invalid_choice"
        );
        assert!(Retention::default().validate().is_ok());
        assert!(Retention {
            keep_months: Some(24)
        }
        .validate()
        .is_ok());
        for bad in [0, MAX_KEEP_MONTHS + 1] {
            assert_eq!(
                Retention {
                    keep_months: Some(bad)
                }
                .validate()
                .unwrap_err()
                .field,
                "keep_months"
            );
        }
    }
}
