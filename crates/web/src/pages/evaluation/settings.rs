//! 评价设置: one org's rating options, time limit, press interval and negative reasons — its own or
//! inherited, and where from. A refused save shows the error next to the row or field it is about.

use crate::api::evaluation::{OptionBody, SettingsBody};
use crate::auth::PageCaller;
use crate::error::ApiError;
use crate::i18n::Locale;
use crate::pages::{
    choices, empty_none, error_page, error_text, org_choices, render_status, Choice, FormFields,
    Shell, TreeRow,
};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_domain::evaluation::EvaluationSettings;
use keping_store::evaluation as store;
use keping_store::StoreError;
use serde::Deserialize;

const POLARITIES: [&str; 3] = ["positive", "neutral", "negative"];

#[derive(askama::Template)]
#[template(path = "evaluation_settings.html")]
struct SettingsPage {
    shell: Shell,
    orgs: Vec<TreeRow>,
    org_id: i64,
    org_name: String,
    /// Where the settings in force come from, as a sentence.
    source: String,
    own: bool,
    f: Fields,
    polarities: Vec<Choice>,
    can_manage: bool,
    notice: Option<String>,
    error: Option<FieldError>,
}

/// What the form shows: the settings in force, or what was sent.
struct Fields {
    press_interval_seconds: String,
    rating_timeout_seconds: String,
    bare_presses_count: bool,
    options: Vec<OptionBody>,
    /// One per line.
    negative_reasons: String,
}

/// A refused save: the field it is about (`options[1].key`) and the sentence to show there.
struct FieldError {
    field: String,
    message: String,
}

impl Fields {
    fn of(s: EvaluationSettings) -> Fields {
        let body = SettingsBody::from_settings(s);
        Fields {
            press_interval_seconds: body.press_interval_seconds.to_string(),
            rating_timeout_seconds: body.rating_timeout_seconds.to_string(),
            bare_presses_count: body.bare_presses_count,
            options: body.options,
            negative_reasons: body.negative_reasons.join("\n"),
        }
    }

    /// The option rows arrive as repeated fields, in the order the page shows them.
    fn sent(form: &FormFields) -> Fields {
        let options = form
            .all("key")
            .into_iter()
            .zip(form.all("label"))
            .zip(form.all("label_en"))
            .zip(form.all("polarity"))
            .map(|(((key, label), label_en), polarity)| OptionBody {
                key: key.to_string(),
                label: label.to_string(),
                label_en: Some(label_en.trim().to_string()).filter(|l| !l.is_empty()),
                polarity: polarity.to_string(),
            })
            .collect();
        Fields {
            press_interval_seconds: form.text("press_interval_seconds"),
            rating_timeout_seconds: form.text("rating_timeout_seconds"),
            bare_presses_count: form.checked("bare_presses_count"),
            options,
            negative_reasons: form.text("negative_reasons"),
        }
    }

    fn settings(&self) -> Result<EvaluationSettings, ApiError> {
        let number = |field: &str, value: &str| {
            value.trim().parse::<i64>().map_err(|_| {
                ApiError::invalid(
                    field,
                    "not_a_number",
                    format!("{field} must be a whole number"),
                )
            })
        };
        SettingsBody {
            press_interval_seconds: number("press_interval_seconds", &self.press_interval_seconds)?,
            rating_timeout_seconds: number("rating_timeout_seconds", &self.rating_timeout_seconds)?,
            bare_presses_count: self.bare_presses_count,
            options: self.options.clone(),
            negative_reasons: self
                .negative_reasons
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        }
        .into_settings()
    }
}

impl FieldError {
    fn new(locale: Locale, e: ApiError) -> FieldError {
        let field = e.field.clone().unwrap_or_default();
        // the sentence names the column ("options[1].key" → key) since it stands beside the row
        let mut shown = e;
        shown.field = shown.field.map(|f| {
            let last = f.rsplit('.').next().unwrap_or(&f);
            last.split('[').next().unwrap_or(last).to_string()
        });
        FieldError {
            field,
            message: error_text(locale, &shown),
        }
    }
}

impl SettingsPage {
    /// The error about exactly this field.
    fn error_at(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    /// The error about any column of option row `i`.
    fn row_error(&self, i: &usize) -> Option<&str> {
        let prefix = format!("options[{i}].");
        self.error
            .as_ref()
            .filter(|e| e.field.starts_with(&prefix))
            .map(|e| e.message.as_str())
    }

    fn invalid(&self, i: &usize, column: &str) -> bool {
        self.error
            .as_ref()
            .is_some_and(|e| e.field == format!("options[{i}].{column}"))
    }

    fn reasons_error(&self) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|e| e.field.starts_with("negative_reasons"))
            .map(|e| e.message.as_str())
    }

    /// An error no field of the form shows (a missing permission, say).
    fn general_error(&self) -> Option<&str> {
        let e = self.error.as_ref()?;
        let placed = [
            "press_interval_seconds",
            "rating_timeout_seconds",
            "options",
        ]
        .contains(&e.field.as_str())
            || e.field.starts_with("options[")
            || e.field.starts_with("negative_reasons");
        (!placed).then_some(e.message.as_str())
    }
}

#[derive(Deserialize)]
pub struct SettingsQuery {
    #[serde(default, deserialize_with = "empty_none")]
    org_id: Option<i64>,
    saved: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<SettingsQuery>,
) -> Response {
    let notice = crate::pages::notice(caller.locale, q.saved.as_deref());
    draw(&state, &caller, q.org_id, None, notice, None).await
}

pub async fn save(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormFields(form);
    let org_id = form.id("org_id").unwrap_or_default();
    let sent = Fields::sent(&form);
    let saved = async {
        let settings = sent.settings()?;
        store::put_settings(&state.db, &caller.scope, org_id, &settings).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match saved {
        Ok(()) => Redirect::to(&format!("/evaluation-settings?org_id={org_id}&saved=saved"))
            .into_response(),
        Err(e) => {
            let error = FieldError::new(caller.locale, e);
            draw(&state, &caller, Some(org_id), Some(sent), None, Some(error)).await
        }
    }
}

/// Drops the org's own settings after the page asked for confirmation.
pub async fn inherit(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let org_id = FormFields(form).id("org_id").unwrap_or_default();
    match store::inherit_settings(&state.db, &caller.scope, org_id).await {
        Ok(()) => Redirect::to(&format!(
            "/evaluation-settings?org_id={org_id}&saved=inherited"
        ))
        .into_response(),
        Err(e) => {
            draw(
                &state,
                &caller,
                Some(org_id),
                None,
                None,
                Some(FieldError::new(caller.locale, e.into())),
            )
            .await
        }
    }
}

async fn draw(
    state: &AppState,
    caller: &PageCaller,
    org_id: Option<i64>,
    sent: Option<Fields>,
    notice: Option<String>,
    error: Option<FieldError>,
) -> Response {
    let shell = Shell::new(caller, "evaluation_settings")
        .crumb("nav.evaluation_settings", "/evaluation-settings");
    let orgs = match org_choices(&state.db, &caller.scope).await {
        Ok(o) => o,
        Err(e) => return error_page(shell, e),
    };
    // without a choice, the top of the caller's tree
    let Some(org_id) = org_id.or_else(|| orgs.first().map(|r| r.org.id)) else {
        return error_page(shell, StoreError::Forbidden("org.view"));
    };
    let Some(org_name) = orgs
        .iter()
        .find(|r| r.org.id == org_id)
        .map(|r| r.org.name.clone())
    else {
        return error_page(shell, StoreError::NotFound);
    };
    let in_force = match store::settings(&state.db, &caller.scope, org_id).await {
        Ok(s) => s,
        Err(e) => return error_page(shell, e),
    };
    let own = in_force.from_org_id == Some(org_id);
    let source = match (&in_force.from_org_name, own) {
        (_, true) => shell.t("evaluation_settings.own"),
        (Some(from), false) => shell
            .t("evaluation_settings.inherited")
            .replace("{org}", from),
        (None, _) => shell.t("evaluation_settings.defaults"),
    };
    let page = SettingsPage {
        polarities: choices(caller.locale, "polarity", &POLARITIES),
        can_manage: caller.scope.has("settings.manage"),
        f: sent.unwrap_or_else(|| Fields::of(in_force.settings)),
        shell,
        orgs,
        org_id,
        org_name,
        source,
        own,
        notice,
        error,
    };
    let status = if page.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render_status(&page, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormFields {
        FormFields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn rows_arrive_in_order_and_errors_name_their_column() {
        let sent = Fields::sent(&form(&[
            ("press_interval_seconds", "15"),
            ("rating_timeout_seconds", "40"),
            ("key", "good"),
            ("label", "满意"),
            ("label_en", ""),
            ("polarity", "positive"),
            ("key", "good"),
            ("label", "不满意"),
            ("label_en", "Bad"),
            ("polarity", "negative"),
            ("negative_reasons", "服务礼仪\n\n 服务效率 \n"),
        ]));
        assert_eq!(sent.options.len(), 2);
        assert_eq!(sent.options[0].label_en, None);
        let e = sent.settings().unwrap().validate().unwrap_err();
        let shown = FieldError::new(Locale::Zh, e.into());
        assert_eq!(shown.field, "options[1].key");
        assert_eq!(shown.message, "选项代码已被使用，请换一个");

        let mut fixed = sent;
        fixed.options[1].key = "bad".into();
        let settings = fixed.settings().unwrap();
        assert_eq!(settings.press_interval_seconds, 15);
        assert_eq!(settings.negative_reasons, ["服务礼仪", "服务效率"]);
        assert!(!settings.bare_presses_count);

        fixed.rating_timeout_seconds = "half a minute".into();
        let e = fixed.settings().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("rating_timeout_seconds"));
        assert_eq!(
            FieldError::new(Locale::Zh, e).message,
            "评价延迟时限须填写整数"
        );
    }
}
