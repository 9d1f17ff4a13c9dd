//! Scheduled reports (定期报表): how often, which period a moment closes, and the summary text.
//! Pure: the scheduler in the app asks [`last_closed`] and the store records what was sent.

use crate::notify::AlertSettings;
use crate::validate::Invalid;
use crate::Millis;
use chrono::{Datelike, Duration, NaiveDate, TimeZone};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
}

impl Frequency {
    pub const ALL: [Frequency; 3] = [Frequency::Daily, Frequency::Weekly, Frequency::Monthly];

    pub fn code(self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Frequency, Invalid> {
        Frequency::ALL
            .into_iter()
            .find(|f| f.code() == s)
            .ok_or_else(|| {
                Invalid::new(
                    field,
                    "invalid_frequency",
                    format!("'{s}' is not a frequency: daily, weekly or monthly"),
                )
            })
    }

    /// 日报 / 周报 / 月报
    pub fn name_zh(self) -> &'static str {
        match self {
            Frequency::Daily => "日报",
            Frequency::Weekly => "周报",
            Frequency::Monthly => "月报",
        }
    }
}

/// One report period, both ends included, in the org's local dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `2026-11-21` (daily), `2026-W47` (ISO week, weekly), `2026-10` (monthly): what the
    /// schedule records as sent.
    pub key: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The latest period that has closed at `now` in `timezone`: yesterday, last Monday–Sunday week,
/// last month.
pub fn last_closed(frequency: Frequency, timezone: &str, now: Millis) -> Period {
    let tz: chrono_tz::Tz = timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    let today = tz
        .timestamp_millis_opt(now)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default();
    match frequency {
        Frequency::Daily => {
            let d = today - Duration::days(1);
            Period {
                key: d.to_string(),
                from: d,
                to: d,
            }
        }
        Frequency::Weekly => {
            let monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
            let from = monday - Duration::days(7);
            let week = from.iso_week();
            Period {
                key: format!("{}-W{:02}", week.year(), week.week()),
                from,
                to: monday - Duration::days(1),
            }
        }
        Frequency::Monthly => {
            let first = today.with_day(1).expect("day 1 exists");
            let to = first - Duration::days(1);
            let from = to.with_day(1).expect("day 1 exists");
            Period {
                key: format!("{:04}-{:02}", from.year(), from.month()),
                from,
                to,
            }
        }
    }
}

/// A report schedule as the API and the page take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleInput {
    pub org_id: i64,
    pub frequency: Frequency,
    /// Where the report goes: e-mail gets the xlsx, the others a summary and a link.
    pub channels: Vec<crate::notify::Channel>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl ScheduleInput {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.channels.is_empty() {
            return Err(Invalid::new(
                "channels",
                "required",
                "name at least one place to send the report",
            ));
        }
        AlertSettings {
            channels: self.channels.clone(),
        }
        .validate()
    }
}

/// Share as `90.0%`, or `—` when there is nothing to divide.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_string(), |r| format!("{:.1}%", r * 100.0))
}

/// Why a customer deserves a churn warning, from his grading inputs of the month run and the
/// month before: no order for `idle_days` or more, falling sales (growth below zero), more
/// complaints than the month before. Empty when none applies.
pub fn churn_reasons(
    now: &serde_json::Map<String, serde_json::Value>,
    before: Option<&serde_json::Map<String, serde_json::Value>>,
    idle_days: i64,
) -> Vec<String> {
    let num = |m: &serde_json::Map<String, serde_json::Value>, k: &str| {
        m.get(k).and_then(serde_json::Value::as_f64)
    };
    let mut reasons = Vec::new();
    if let Some(d) = num(now, "days_since_last_order").filter(|d| *d >= idle_days as f64) {
        reasons.push(format!("{d} 天未订货"));
    }
    if let Some(g) = num(now, "sales_growth").filter(|g| *g < 0.0) {
        reasons.push(format!("销售环比下降 {}%", -g));
    }
    if let (Some(c), Some(b)) = (
        num(now, "complaints"),
        before.and_then(|b| num(b, "complaints")),
    ) {
        if c > b {
            reasons.push(format!("投诉增加（{b} → {c}）"));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Millis {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn periods_close_at_local_midnight() {
        // 2026-11-23 00:30 in Shanghai is still the 22nd in UTC
        let now = at("2026-11-22T16:30:00Z");
        let d = last_closed(Frequency::Daily, "Asia/Shanghai", now);
        assert_eq!(d.key, "2026-11-22");
        let d = last_closed(Frequency::Daily, "UTC", now);
        assert_eq!(d.key, "2026-11-21");
        // Monday 23 November: the week 16–22 November closed
        let w = last_closed(Frequency::Weekly, "Asia/Shanghai", now);
        assert_eq!(
            (w.key.as_str(), w.from.to_string(), w.to.to_string()),
            ("2026-W47", "2026-11-16".into(), "2026-11-22".into())
        );
        let m = last_closed(
            Frequency::Monthly,
            "Asia/Shanghai",
            at("2026-03-01T00:00:00+08:00"),
        );
        assert_eq!(
            (m.key.as_str(), m.from.to_string(), m.to.to_string()),
            ("2026-02", "2026-02-01".into(), "2026-02-28".into())
        );
        let m = last_closed(
            Frequency::Monthly,
            "Asia/Shanghai",
            at("2027-01-05T10:00:00+08:00"),
        );
        assert_eq!(m.key, "2026-12");
    }

    #[test]
    fn churn_reasons_in_words() {
        let m = |v: serde_json::Value| v.as_object().unwrap().clone();
        let now = m(
            serde_json::json!({"days_since_last_order": 95, "sales_growth": -12.5, "complaints": 3}),
        );
        let before = m(serde_json::json!({"complaints": 1}));
        assert_eq!(
            churn_reasons(&now, Some(&before), 90),
            vec!["95 天未订货", "销售环比下降 12.5%", "投诉增加（1 → 3）"]
        );
        assert!(churn_reasons(&now, Some(&now), 100).len() == 1);
        assert!(churn_reasons(&m(serde_json::json!({})), None, 1).is_empty());
    }

    #[test]
    fn schedules_need_a_channel() {
        let s = ScheduleInput {
            org_id: 1,
            frequency: Frequency::Daily,
            channels: vec![],
            enabled: true,
        };
        assert_eq!(s.validate().unwrap_err().code, "required");
        assert_eq!(
            Frequency::parse("frequency", "hourly").unwrap_err().code,
            "invalid_frequency"
        );
    }
}
