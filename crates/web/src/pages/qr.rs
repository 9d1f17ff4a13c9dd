//! 扫码评价: the customer's page behind a window's QR code (`/r/{token}`), and the printable card
//! a manager makes for it (`/windows/{id}/qr`).

use super::{error_page, render, render_status, visitor_locale, Shell};
use crate::api::accounts::photo_response;
use crate::auth::PageCaller;
use crate::error::ApiError;
use crate::i18n::Locale;
use crate::AppState;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use keping_domain::auth::new_secret;
use keping_domain::evaluation::{Polarity, PressTarget, RatingOption};
use keping_domain::now_millis;
use keping_store::evaluation::{self as store, Device, DeviceState, Window};
use keping_store::press::PressInput;
use keping_store::StoreError;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

/// Limits on presses through QR pages, per visitor address and per QR code. The code hangs in
/// public, so these limits, not the token, keep a script from stuffing ratings.
pub struct QrLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_terminal: DefaultKeyedRateLimiter<i64>,
}

/// Past this many remembered addresses, those back at their full allowance are forgotten.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

impl Default for QrLimits {
    fn default() -> Self {
        let per_minute = |n| Quota::per_minute(NonZeroU32::new(n).expect("limits are above 0"));
        QrLimits {
            // a family sharing one phone, not a script
            per_ip: RateLimiter::keyed(per_minute(10)),
            // far more than one window serves
            per_terminal: RateLimiter::keyed(per_minute(60)),
        }
    }
}

impl QrLimits {
    fn allow(&self, ip: IpAddr, terminal_id: i64) -> bool {
        if self.per_ip.len() > MAX_TRACKED_ADDRESSES {
            self.per_ip.retain_recent();
        }
        self.per_ip.check_key(&ip).is_ok() && self.per_terminal.check_key(&terminal_id).is_ok()
    }
}

/// One rating button as the customer sees it.
struct Choice {
    key: String,
    label: String,
    tone: &'static str,
    icon: &'static str,
}

/// Tones and faces by polarity; the first positive option is the best one (非常满意).
fn choices(locale: Locale, options: &[RatingOption]) -> Vec<Choice> {
    let mut seen_positive = false;
    options
        .iter()
        .map(|o| {
            let (tone, icon) = match o.polarity {
                Polarity::Positive if !seen_positive => ("best", "bi-emoji-laughing"),
                Polarity::Positive => ("good", "bi-emoji-smile"),
                Polarity::Neutral => ("neutral", "bi-emoji-neutral"),
                Polarity::Negative => ("bad", "bi-emoji-frown"),
            };
            seen_positive |= o.polarity == Polarity::Positive;
            Choice {
                key: o.key.clone(),
                label: match (locale, &o.label_en) {
                    (Locale::En, Some(en)) => en.clone(),
                    _ => o.label.clone(),
                },
                tone,
                icon,
            }
        })
        .collect()
}

/// What the page says after a press, or instead of the buttons.
#[derive(Clone, Copy)]
enum Outcome {
    Thanks,
    AlreadyRated,
    NothingToRate,
    TooMany,
    Expired,
    Failed,
}

impl Outcome {
    fn text(self) -> &'static str {
        match self {
            Outcome::Thanks => "qr.thanks",
            Outcome::AlreadyRated => "qr.already_rated",
            Outcome::NothingToRate => "qr.nothing_to_rate",
            Outcome::TooMany => "qr.too_many",
            Outcome::Expired => "qr.expired",
            Outcome::Failed => "qr.failed",
        }
    }

    fn icon(self) -> &'static str {
        match self {
            Outcome::Thanks => "bi-heart-fill text-danger",
            Outcome::AlreadyRated | Outcome::NothingToRate => "bi-emoji-smile text-primary",
            Outcome::TooMany => "bi-hourglass-split text-warning",
            Outcome::Expired | Outcome::Failed => "bi-exclamation-circle text-secondary",
        }
    }

    fn code(self) -> &'static str {
        match self {
            Outcome::Thanks => "thanks",
            Outcome::AlreadyRated => "already_rated",
            Outcome::NothingToRate => "nothing_to_rate",
            Outcome::TooMany => "too_many",
            Outcome::Expired => "expired",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(askama::Template)]
#[template(path = "qr.html")]
struct QrPage {
    locale: Locale,
    token: String,
    /// The window and who serves there; None when the code is no longer valid.
    place: Option<DeviceState>,
    choices: Vec<Choice>,
    /// Makes this visit's press idempotent: a double tap or a resent form counts once.
    nonce: String,
    outcome: Option<Outcome>,
}

#[derive(Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

/// The phone's language unless the page was asked for one.
fn locale_of(lang: Option<&str>, headers: &HeaderMap) -> Locale {
    lang.map_or_else(|| visitor_locale(headers), Locale::parse)
}

/// The QR terminal of a printed token; other kinds of terminal have no page.
async fn qr_device(state: &AppState, token: &str) -> Result<Option<Device>, StoreError> {
    Ok(store::device(&state.db, token).await?.filter(Device::is_qr))
}

async fn show(
    state: &AppState,
    locale: Locale,
    token: String,
    device: Option<&Device>,
    outcome: Option<Outcome>,
    status: StatusCode,
) -> Response {
    let place = match device {
        Some(d) => match store::device_state(&state.db, d).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "QR page state failed");
                None
            }
        },
        None => None,
    };
    let choices = match (&place, outcome) {
        (Some(p), None) => choices(locale, &p.settings.options),
        _ => Vec::new(),
    };
    let page = QrPage {
        locale,
        token,
        place,
        choices,
        nonce: new_secret("v"),
        outcome,
    };
    let mut response = render_status(&page, status);
    // each visit needs its own nonce: no cache may hand out a page twice
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let locale = locale_of(q.lang.as_deref(), &headers);
    match qr_device(&state, &token).await {
        Ok(Some(d)) => show(&state, locale, token, Some(&d), None, StatusCode::OK).await,
        Ok(None) => {
            let status = StatusCode::NOT_FOUND;
            show(&state, locale, token, None, Some(Outcome::Expired), status).await
        }
        Err(e) => failed(&state, locale, token, e).await,
    }
}

async fn failed(state: &AppState, locale: Locale, token: String, e: StoreError) -> Response {
    tracing::error!(error = %e, "QR press failed");
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    show(state, locale, token, None, Some(Outcome::Failed), status).await
}

#[derive(Deserialize)]
pub struct QrPress {
    key: String,
    nonce: String,
    lang: Option<String>,
}

/// A press from the QR page: the open prompt, else the window's latest service if it ended
/// recently and is unrated (the customer often scans on his way out).
pub async fn press(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(f): Form<QrPress>,
) -> Response {
    let locale = locale_of(f.lang.as_deref(), &headers);
    let device = match qr_device(&state, &token).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            let status = StatusCode::NOT_FOUND;
            return show(&state, locale, token, None, Some(Outcome::Expired), status).await;
        }
        Err(e) => return failed(&state, locale, token, e).await,
    };
    // the peer address: behind a reverse proxy all visitors share the proxy's
    if !state.qr_limits.allow(peer.ip(), device.terminal_id) {
        let status = StatusCode::TOO_MANY_REQUESTS;
        return show(
            &state,
            locale,
            token,
            Some(&device),
            Some(Outcome::TooMany),
            status,
        )
        .await;
    }
    let input = PressInput {
        target: PressTarget::PromptOrRecentService,
        key: f.key,
        idempotency_key: format!("qr-{}", f.nonce),
        pressed_at: now_millis(),
        sent_at: None,
        phone: None,
        negative_reason: None,
    };
    let pressed = state.presses.press(&device, input).await;
    if let Ok(o) = &pressed {
        crate::api::device::after_press(&state, &device, o);
    }
    let outcome = match pressed {
        Ok(o) if o.counted => Outcome::Thanks,
        Ok(o) if o.reason.as_deref() == Some("already_rated") => Outcome::AlreadyRated,
        Ok(_) => Outcome::NothingToRate,
        // this visit has pressed already (a resent form, a second key): its first press stands
        Err(StoreError::Conflict { .. }) => Outcome::AlreadyRated,
        // options changed since the page was drawn, or a forged form: start again
        Err(StoreError::Invalid(_)) => {
            return Redirect::to(&format!("/r/{token}?lang={}", locale.code())).into_response()
        }
        Err(e) => return failed(&state, locale, token, e).await,
    };
    show(
        &state,
        locale,
        token,
        Some(&device),
        Some(outcome),
        StatusCode::OK,
    )
    .await
}

/// The photo on the QR page's staff card.
pub async fn photo(
    State(state): State<AppState>,
    Path((token, staff_id)): Path<(String, i64)>,
) -> Response {
    let found = match qr_device(&state, &token).await {
        Ok(Some(d)) => store::duty_photo(&state.db, &d, staff_id).await,
        Ok(None) => Err(StoreError::NotFound),
        Err(e) => Err(e),
    };
    match found {
        Ok((bytes, kind)) => photo_response(bytes, kind),
        Err(e) => ApiError::from(e).status.into_response(),
    }
}

// ---------------------------------------------------------------- the printable card

#[derive(askama::Template)]
#[template(path = "qr_card.html")]
struct CardPage {
    shell: Shell,
    window: Window,
    /// The new code's address and its QR image (SVG), shown once after "make and print".
    card: Option<(String, String)>,
}

fn card_shell(caller: &PageCaller, id: i64) -> Shell {
    Shell::new(caller, "qr").crumb("qr_card.title", &format!("/windows/{id}/qr"))
}

pub async fn card(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    let shell = card_shell(&caller, id);
    match store::window_reached_by(&state.db, &caller.scope, &["terminal.manage"], id).await {
        Ok(window) => render(&CardPage {
            shell,
            window,
            card: None,
        }),
        Err(e) => error_page(shell, e),
    }
}

/// Makes a new QR terminal for the window (the older codes stop working) and shows its card once.
pub async fn rotate(
    State(state): State<AppState>,
    caller: PageCaller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let shell = card_shell(&caller, id);
    let (window, token) = match store::rotate_qr_terminal(&state.db, &caller.scope, id).await {
        Ok(made) => made,
        Err(e) => return error_page(shell, e),
    };
    let url = format!("{}/r/{token}", base_url(&headers));
    let Ok(code) = QrCode::with_error_correction_level(&url, EcLevel::M) else {
        let e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "this server's address is too long for a QR code",
        );
        return error_page(shell, e);
    };
    let image = code.render::<svg::Color>().min_dimensions(320, 320).build();
    // drawn inline in HTML, where the XML declaration has no place
    let image = image
        .split_once("?>")
        .map_or(image.clone(), |(_, svg)| svg.to_string());
    let mut response = render(&CardPage {
        shell,
        window,
        card: Some((url, image)),
    });
    // the page carries the code's token: no cache may keep it
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The address the manager's browser reached this server at: the printed code points there.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    // behind a proxy that ends TLS, the browser's scheme comes in X-Forwarded-Proto
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keping_domain::evaluation::EvaluationSettings;

    #[test]
    fn faces_follow_polarity_and_language() {
        let options = EvaluationSettings::default().options;
        let zh: Vec<(String, &str)> = choices(Locale::Zh, &options)
            .into_iter()
            .map(|c| (c.label, c.tone))
            .collect();
        assert_eq!(
            zh,
            [
                ("非常满意".to_string(), "best"),
                ("满意".to_string(), "good"),
                ("一般".to_string(), "neutral"),
                ("不满意".to_string(), "bad")
            ]
        );
        let en = choices(Locale::En, &options);
        assert_eq!(en[0].label, "Very satisfied");
        assert_eq!(en[0].icon, "bi-emoji-laughing");
        assert_eq!(en[0].key, "very_satisfied");
    }

    #[test]
    fn printed_codes_point_where_the_manager_reached_us() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_static("keping.example:8080"),
        );
        assert_eq!(base_url(&headers), "http://keping.example:8080");
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(base_url(&headers), "https://keping.example:8080");
    }
}
