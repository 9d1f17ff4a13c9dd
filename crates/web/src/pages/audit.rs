//! 审计日志: who changed what and when, newest first; read-only.

use super::{
    choices, day_start, error_page, field_label, level_name, org_choices, render, Choice, Pager,
    Shell,
};
use crate::auth::PageCaller;
use crate::i18n::Locale;
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use keping_domain::auth::permission;
use keping_store::audit::{self, AuditFilter, AuditRow};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

const PAGE_SIZE: i64 = 50;
const ENTITIES: [&str; 9] = [
    "org",
    "user",
    "role",
    "token",
    "window",
    "terminal",
    "business_type",
    "evaluation_settings",
    "follow_up",
];
const ACTIONS: [&str; 13] = [
    "create",
    "update",
    "delete",
    "move",
    "login",
    "login_failed",
    "change_password",
    "reset_password",
    "update_photo",
    "revoke",
    "reset_admin",
    "rotate",
    "close",
];
const DAY_MS: i64 = 86_400_000;

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    entity: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    username: String,
    /// YYYY-MM-DD, China Standard Time, inclusive
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    cursor: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "audit.html")]
struct AuditPage {
    shell: Shell,
    q: AuditQuery,
    entities: Vec<Choice>,
    actions: Vec<Choice>,
    entries: Vec<Line>,
    pager: Pager,
}

/// One entry as the table shows it.
struct Line {
    row: AuditRow,
    action: String,
    entity: String,
    changes: Vec<Change>,
}

struct Change {
    field: String,
    /// None when the value was set from nothing (a creation).
    before: Option<String>,
    after: String,
}

pub async fn page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<AuditQuery>,
) -> Response {
    let shell = Shell::new(&caller, "audit").crumb("nav.audit", "/audit");
    let locale = caller.locale;
    let filter = AuditFilter {
        entity: Some(q.entity.clone()).filter(|s| !s.is_empty()),
        action: Some(q.action.clone()).filter(|s| !s.is_empty()),
        username: Some(q.username.trim().to_string()).filter(|s| !s.is_empty()),
        from_ms: day_start(&q.from),
        // the "to" day is included: entries before the next midnight
        to_ms: day_start(&q.to).map(|t| t + DAY_MS),
    };
    let found = match audit::list(
        &state.db,
        &caller.scope,
        &filter,
        PAGE_SIZE,
        q.cursor.as_deref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return error_page(shell, e),
    };
    let params = [
        ("entity", q.entity.as_str()),
        ("action", q.action.as_str()),
        ("username", q.username.as_str()),
        ("from", q.from.as_str()),
        ("to", q.to.as_str()),
    ];
    let pager = Pager::new(
        "/audit",
        &params,
        q.cursor.as_deref(),
        found.next_cursor.as_deref(),
    );
    // org ids in the changes read better as names
    let orgs = match org_choices(&state.db, &caller.scope).await {
        Ok(rows) => rows.into_iter().map(|r| (r.org.id, r.org.name)).collect(),
        Err(e) => return error_page(shell, e),
    };
    let words = Words { locale, orgs };
    let entries = found.items.into_iter().map(|r| words.line(r)).collect();
    render(&AuditPage {
        entities: choices(locale, "audit.entity", &ENTITIES),
        actions: choices(locale, "audit.action", &ACTIONS),
        shell,
        q,
        entries,
        pager,
    })
}

/// How recorded codes and values read in the caller's language.
struct Words {
    locale: Locale,
    orgs: HashMap<i64, String>,
}

impl Words {
    fn line(&self, row: AuditRow) -> Line {
        let label = |prefix: &str, code: &str| {
            self.locale
                .try_t(&format!("{prefix}.{code}"))
                .unwrap_or_else(|| code.to_string())
        };
        // stored as {"field": [before, after]}
        let changes = row
            .changes
            .as_deref()
            .and_then(|c| serde_json::from_str::<serde_json::Map<String, Value>>(c).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|(field, pair)| {
                let side = |i: usize| pair.get(i).unwrap_or(&Value::Null);
                Change {
                    before: Some(side(0))
                        .filter(|v| !v.is_null())
                        .map(|v| self.value(&field, v)),
                    after: self.value(&field, side(1)),
                    field: field_label(self.locale, &field),
                }
            })
            .collect();
        Line {
            action: label("audit.action", &row.action),
            entity: label("audit.entity", &row.entity),
            changes,
            row,
        }
    }

    /// A recorded value in words: codes the product knows (kinds, data levels, permissions, orgs)
    /// by name.
    fn value(&self, field: &str, v: &Value) -> String {
        let locale = self.locale;
        match v {
            Value::Null => "—".to_string(),
            Value::Bool(b) if field == "enabled" => locale.t(if *b {
                "common.enabled"
            } else {
                "common.disabled"
            }),
            Value::Bool(b) => locale.t(if *b { "common.yes" } else { "common.no" }),
            Value::Number(n) if matches!(field, "org_id" | "parent_id") => n
                .as_i64()
                .and_then(|id| self.orgs.get(&id).cloned())
                .unwrap_or_else(|| n.to_string()),
            Value::String(s) => match field {
                "kind" => locale
                    .try_t(&format!("org.kind.{s}"))
                    .unwrap_or_else(|| s.clone()),
                "data_level" => level_name(locale, s),
                "permissions" => permission(s).map_or_else(
                    || s.clone(),
                    |p| locale.pick(p.name_zh, p.name_en).to_string(),
                ),
                _ => s.clone(),
            },
            Value::Array(items) => items
                .iter()
                .map(|i| self.value(field, i))
                .collect::<Vec<_>>()
                .join(locale.pick("、", ", ")),
            other => other.to_string(),
        }
    }
}
