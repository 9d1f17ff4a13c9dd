//! Reminders (提醒) for a rep's own customers: customers' birthdays (where switched on), contacts'
//! birthdays and important dates, follow-ups due, and customers about to return to the pool. On
//! the home page, and once a day by e-mail ([`send_digests`]) to reps whose account has an address
//! and who have not switched the e-mail off.

use super::{china, pool_settings_for, require, today, ImportantDate, DAY_MS};
use crate::{accounts, notify, Db, Result, Sql};
use chrono::{NaiveDate, TimeZone, Timelike};
use keping_domain::notify::{Channel, Notice};
use keping_domain::scope::Scope;
use keping_domain::{now_millis, Millis};
use serde::Serialize;
use utoipa::ToSchema;

/// How far ahead birthdays and important dates are announced, in days (today included).
const AHEAD_DAYS: u64 = 7;
/// Each kind lists at most this many.
const LIMIT: usize = 20;
/// The daily e-mail goes out from this local hour on.
const DIGEST_HOUR: u32 = 8;

/// What a rep should act on soon, for the home page.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Reminders {
    /// Customers (with reminders on) whose birthday falls within the next days.
    pub birthdays: Vec<Reminder>,
    /// Contacts' birthdays and important dates within the next days.
    pub contact_dates: Vec<Reminder>,
    /// Follow-ups planned for today or earlier.
    pub due_follow_ups: Vec<Reminder>,
    /// The caller's customers that return to the pool within a week unless followed up.
    pub pool_returns: Vec<Reminder>,
}

impl Reminders {
    pub fn is_empty(&self) -> bool {
        self.birthdays.is_empty()
            && self.contact_dates.is_empty()
            && self.due_follow_ups.is_empty()
            && self.pool_returns.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reminder {
    pub customer_id: i64,
    pub name: String,
    /// YYYY-MM-DD: the birthday or date this year, the planned follow-up, or the return date.
    pub date: String,
    /// For a contact's date: the contact's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// For a contact's important date: what it is (合作纪念日…); none for the contact's birthday.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occasion: Option<String>,
}

impl Reminder {
    /// A reminder about the customer itself (not one of its contacts).
    fn of_customer(customer_id: i64, name: String, date: String) -> Reminder {
        Reminder {
            customer_id,
            name,
            date,
            contact: None,
            occasion: None,
        }
    }
}

/// The coming days' dates by month and day ("MM-DD" → the date), for dates that recur yearly.
fn coming_days(today: NaiveDate) -> Vec<(String, NaiveDate)> {
    (0..AHEAD_DAYS)
        .filter_map(|d| today.checked_add_days(chrono::Days::new(d)))
        .map(|d| (d.format("%m-%d").to_string(), d))
        .collect()
}

/// The month and day of a stored date (YYYY-MM-DD or MM-DD).
fn month_day(date: &str) -> Option<&str> {
    let date = date.trim();
    let md = date.get(date.len().checked_sub(5)?..)?;
    (md.as_bytes().get(2) == Some(&b'-')).then_some(md)
}

/// Reminders among the customers the caller owns (at most 20 of each kind).
pub async fn reminders(db: &Db, scope: &Scope) -> Result<Reminders> {
    require(scope, "customer.view")?;
    let today = today();
    let days = coming_days(today);
    let this_year = |md: &str| {
        days.iter()
            .find(|(m, _)| m == md)
            .map(|(_, d)| d.format("%Y-%m-%d").to_string())
    };
    let mut out = Reminders::default();
    let mut sql = Sql::new("SELECT id, name, birthday_md FROM customers WHERE owner_id = ");
    sql.arg(scope.user_id)
        .push(" AND birthday_reminder = 1 AND birthday_md IN (");
    for (i, (md, _)) in days.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.arg(md);
    }
    sql.push(") LIMIT 20");
    let rows: Vec<(i64, String, String)> = sql.fetch_all(&db.pool).await?;
    out.birthdays = rows
        .into_iter()
        .filter_map(|(id, name, md)| Some(Reminder::of_customer(id, name, this_year(&md)?)))
        .collect();
    out.birthdays.sort_by(|a, b| a.date.cmp(&b.date));

    // contacts' dates recur every year: the few contacts with any are read and matched here
    let contacts: Vec<(i64, String, String, Option<String>, String)> = Sql::new(
        "SELECT c.id, c.name, k.name, k.birthday, k.important_dates FROM contacts k JOIN customers c ON c.id = k.customer_id WHERE c.owner_id = ",
    )
    .arg(scope.user_id)
    .push(" AND (k.birthday IS NOT NULL OR k.important_dates <> '[]') ORDER BY c.id, k.id")
    .fetch_all(&db.pool)
    .await?;
    for (customer_id, customer, contact, birthday, dates) in contacts {
        let dates: Vec<ImportantDate> = serde_json::from_str(&dates).unwrap_or_default();
        let occasions = birthday
            .map(|b| (b, None))
            .into_iter()
            .chain(dates.into_iter().map(|d| (d.date, Some(d.label))));
        for (date, occasion) in occasions {
            if let Some(date) = month_day(&date).and_then(this_year) {
                out.contact_dates.push(Reminder {
                    customer_id,
                    name: customer.clone(),
                    date,
                    contact: Some(contact.clone()),
                    occasion,
                });
            }
        }
    }
    out.contact_dates.sort_by(|a, b| a.date.cmp(&b.date));
    out.contact_dates.truncate(LIMIT);

    let due: Vec<(i64, String, String)> =
        Sql::new("SELECT id, name, next_follow_up_on FROM customers WHERE owner_id = ")
            .arg(scope.user_id)
            .push(" AND next_follow_up_on <= ")
            .arg(today.format("%Y-%m-%d").to_string())
            .push(" ORDER BY next_follow_up_on LIMIT 20")
            .fetch_all(&db.pool)
            .await?;
    out.due_follow_ups = due
        .into_iter()
        .map(|(id, name, date)| Reminder::of_customer(id, name, date))
        .collect();
    if let Some(days) = pool_settings_for(&db.pool, &scope.org_path)
        .await?
        .return_after_days
    {
        let horizon = now_millis() - (i64::from(days) - 7) * DAY_MS;
        let soon: Vec<(i64, String, i64)> =
            Sql::new("SELECT id, name, last_touched_at FROM customers WHERE owner_id = ")
                .arg(scope.user_id)
                .push(" AND last_touched_at < ")
                .arg(horizon)
                .push(" ORDER BY last_touched_at LIMIT 20")
                .fetch_all(&db.pool)
                .await?;
        out.pool_returns = soon
            .into_iter()
            .map(|(id, name, touched)| {
                let back = china()
                    .timestamp_millis_opt(touched + i64::from(days) * DAY_MS)
                    .single()
                    .map(|t| t.date_naive().format("%Y-%m-%d").to_string())
                    .unwrap_or_default();
                Reminder::of_customer(id, name, back)
            })
            .collect();
    }
    Ok(out)
}

/// The e-mail of a day's reminders.
fn digest(day: NaiveDate, r: &Reminders, base_url: &str) -> Notice {
    let mut text = String::new();
    let mut count = 0;
    for (title, list) in [
        ("待跟进", &r.due_follow_ups),
        ("客户生日", &r.birthdays),
        ("联系人纪念日", &r.contact_dates),
        ("即将退回公海", &r.pool_returns),
    ] {
        if list.is_empty() {
            continue;
        }
        count += list.len();
        text.push_str(&format!("\n{title}（{}）：", list.len()));
        for x in list {
            text.push_str(&format!("\n· {} {}", x.date, x.name));
            if let Some(contact) = &x.contact {
                let occasion = x.occasion.as_deref().unwrap_or("生日");
                text.push_str(&format!("（{contact} · {occasion}）"));
            }
        }
    }
    Notice {
        kind: "reminders".into(),
        subject: format!("{} 客户提醒（{count} 项）", day.format("%Y-%m-%d")),
        text: text.trim_start().to_string(),
        link: Some(format!("{}/", base_url.trim_end_matches('/'))),
        attachment: None,
    }
}

/// The day's reminder e-mails at `now`: from 08:00 (China time), each rep with an e-mail address,
/// customers of his own and the e-mail switched on gets one message a day with his reminders (none
/// when there is nothing to remind of). Marking the day and queueing the message are one
/// transaction, so a restart neither loses nor repeats a day. Returns how many were queued.
pub async fn send_digests(db: &Db, now: Millis, base_url: &str) -> Result<usize> {
    let local = china()
        .timestamp_millis_opt(now)
        .single()
        .expect("a time in range");
    if local.hour() < DIGEST_HOUR {
        return Ok(0);
    }
    let day = local.date_naive();
    let key = day.format("%Y-%m-%d").to_string();
    let reps: Vec<(i64, i64, String)> = Sql::new(
        "SELECT u.id, u.org_id, u.email FROM users u WHERE u.enabled = 1 AND u.reminder_email = 1 AND u.email IS NOT NULL AND u.email <> '' AND (u.reminders_sent_on IS NULL OR u.reminders_sent_on < ",
    )
    .arg(key.as_str())
    .push(") AND EXISTS (SELECT 1 FROM customers c WHERE c.owner_id = u.id) ORDER BY u.id")
    .fetch_all(&db.pool)
    .await?;
    let mut queued = 0;
    for (user_id, org_id, email) in reps {
        let holder = accounts::holder(db, user_id).await?;
        let scope = accounts::scope_of(db, &holder).await?;
        // a rep who may no longer see customers gets nothing, and is not asked again today
        let found = match reminders(db, &scope).await {
            Ok(r) => Some(r),
            Err(crate::StoreError::Forbidden(_)) => None,
            Err(e) => return Err(e),
        };
        let mut tx = db.begin().await?;
        let claimed = Sql::new("UPDATE users SET reminders_sent_on = ")
            .arg(key.as_str())
            .push(" WHERE id = ")
            .arg(user_id)
            .push(" AND (reminders_sent_on IS NULL OR reminders_sent_on < ")
            .arg(key.as_str())
            .push(")")
            .execute(&mut *tx)
            .await?;
        if claimed == 1 {
            if let Some(r) = found.filter(|r| !r.is_empty()) {
                let to = [Channel::Email {
                    to: email.trim().to_string(),
                }];
                queued += notify::enqueue_notice(&mut tx, org_id, &to, &digest(day, &r, base_url))
                    .await?;
            }
        }
        tx.commit().await?;
    }
    Ok(queued)
}

/// Switches a person's daily reminder e-mail on or off.
pub async fn set_reminder_email(db: &Db, user_id: i64, on: bool) -> Result<()> {
    Sql::new("UPDATE users SET reminder_email = ")
        .arg(i64::from(on))
        .push(" WHERE id = ")
        .arg(user_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Whether a person gets the daily reminder e-mail.
pub async fn reminder_email(db: &Db, user_id: i64) -> Result<bool> {
    let (on,): (i64,) = Sql::new("SELECT reminder_email FROM users WHERE id = ")
        .arg(user_id)
        .fetch_one(&db.pool)
        .await?;
    Ok(on == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_recur_across_the_new_year() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let days = coming_days(d("2026-12-29"));
        assert_eq!(days.len(), 7);
        assert_eq!(days[3], ("01-01".to_string(), d("2027-01-01")));
        assert_eq!(month_day("1980-01-01"), Some("01-01"));
        assert_eq!(month_day("01-01"), Some("01-01"));
        assert_eq!(month_day("0101"), None);
        assert_eq!(month_day(""), None);
    }
}
