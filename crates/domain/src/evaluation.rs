//! Service evaluation rules: rating options, the clock policy for presses, and which presses count.
//!
//! A prompt (opened by a service's End) accepts one counted rating; later presses for it are kept
//! but not counted. A new prompt always accepts its first press, however soon it comes. Presses with
//! no open prompt ("bare" presses) count only where the org allows it, and then one per interval.
//! A QR code scanned by a phone may also rate the window's latest service a while after its prompt
//! closed (the customer scans on the way out), but never makes a bare rating.

use crate::validate::{self, Invalid};
use crate::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    Positive,
    Neutral,
    Negative,
}

impl Polarity {
    pub fn code(self) -> &'static str {
        match self {
            Polarity::Positive => "positive",
            Polarity::Neutral => "neutral",
            Polarity::Negative => "negative",
        }
    }

    pub fn parse(s: &str) -> Option<Polarity> {
        [Polarity::Positive, Polarity::Neutral, Polarity::Negative]
            .into_iter()
            .find(|p| p.code() == s)
    }
}

/// One choice on the terminal, e.g. 非常满意.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingOption {
    pub key: String,
    /// The Chinese label, shown by default.
    pub label: String,
    /// The English label; the Chinese one where absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_en: Option<String>,
    pub polarity: Polarity,
}

/// What an org (and, by inheritance, its subtree) asks of its terminals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationSettings {
    /// 免重呼: at most one counted bare press per this many seconds at a window.
    pub press_interval_seconds: i64,
    /// 评价延迟时限: a prompt left unanswered this long closes as unrated.
    pub rating_timeout_seconds: i64,
    /// Whether presses without an open prompt count at all (plain keypads without Start/End need it).
    #[serde(default)]
    pub bare_presses_count: bool,
    pub options: Vec<RatingOption>,
    /// Reasons a customer may pick after a negative press (服务礼仪, 服务效率, 业务知识…).
    #[serde(default)]
    pub negative_reasons: Vec<String>,
}

impl Default for EvaluationSettings {
    fn default() -> Self {
        let option = |key: &str, label: &str, en: &str, polarity| RatingOption {
            key: key.into(),
            label: label.into(),
            label_en: Some(en.into()),
            polarity,
        };
        EvaluationSettings {
            press_interval_seconds: 10,
            rating_timeout_seconds: 30,
            bare_presses_count: false,
            options: vec![
                option(
                    "very_satisfied",
                    "非常满意",
                    "Very satisfied",
                    Polarity::Positive,
                ),
                option("satisfied", "满意", "Satisfied", Polarity::Positive),
                option("neutral", "一般", "Neutral", Polarity::Neutral),
                option("dissatisfied", "不满意", "Dissatisfied", Polarity::Negative),
            ],
            negative_reasons: vec!["服务礼仪".into(), "服务效率".into(), "业务知识".into()],
        }
    }
}

impl EvaluationSettings {
    /// Checks the settings an administrator submits; each failure names the field.
    pub fn validate(&self) -> Result<(), Invalid> {
        if !(0..=3600).contains(&self.press_interval_seconds) {
            return Err(Invalid::new(
                "press_interval_seconds",
                "out_of_range",
                "press_interval_seconds must be between 0 and 3600",
            ));
        }
        if !(5..=3600).contains(&self.rating_timeout_seconds) {
            return Err(Invalid::new(
                "rating_timeout_seconds",
                "out_of_range",
                "rating_timeout_seconds must be between 5 and 3600",
            ));
        }
        if !(2..=10).contains(&self.options.len()) {
            return Err(Invalid::new(
                "options",
                "out_of_range",
                "there must be between 2 and 10 rating options",
            ));
        }
        let mut keys = std::collections::HashSet::new();
        for (i, o) in self.options.iter().enumerate() {
            let field = format!("options[{i}]");
            validate::code(&format!("{field}.key"), &o.key, 32)?;
            validate::required_text(&format!("{field}.label"), &o.label, 20)?;
            validate::optional_text(&format!("{field}.label_en"), o.label_en.as_deref(), 40)?;
            if !keys.insert(o.key.as_str()) {
                return Err(Invalid::new(
                    &format!("{field}.key"),
                    "duplicate",
                    format!("the key '{}' appears twice", o.key),
                ));
            }
        }
        if !self
            .options
            .iter()
            .any(|o| o.polarity == Polarity::Positive)
        {
            return Err(Invalid::new(
                "options",
                "no_positive",
                "at least one option must be positive",
            ));
        }
        for (i, r) in self.negative_reasons.iter().enumerate() {
            validate::required_text(&format!("negative_reasons[{i}]"), r, 20)?;
        }
        if self.negative_reasons.len() > 10 {
            return Err(Invalid::new(
                "negative_reasons",
                "out_of_range",
                "at most 10 negative reasons",
            ));
        }
        Ok(())
    }

    pub fn option(&self, key: &str) -> Option<&RatingOption> {
        self.options.iter().find(|o| o.key == key)
    }
}

/// The clock policy for a press (documented in the README):
/// - A terminal may send `sent_at` (its clock when sending); the difference to the server's clock on
///   receipt corrects `pressed_at`, so a terminal whose clock is off still lands its presses right.
/// - A corrected time more than [`MAX_AHEAD_MS`] after receipt is impossible: the receipt time is used.
/// - A press older than [`MAX_AGE_MS`] is kept but not counted (`too_old`): periods that old may be
///   reported already.
pub const MAX_AHEAD_MS: Millis = 5_000;
pub const MAX_AGE_MS: Millis = 7 * 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressTime {
    /// The time the press counts at.
    At(Millis),
    TooOld,
}

pub fn effective_time(
    pressed_at: Millis,
    sent_at: Option<Millis>,
    received_at: Millis,
) -> PressTime {
    let corrected = match sent_at {
        Some(sent) => pressed_at.saturating_add(received_at.saturating_sub(sent)),
        None => pressed_at,
    };
    if corrected > received_at + MAX_AHEAD_MS {
        PressTime::At(received_at)
    } else if corrected < received_at - MAX_AGE_MS {
        PressTime::TooOld
    } else {
        PressTime::At(corrected.min(received_at))
    }
}

/// How long after its End a service may still be rated from a QR code.
pub const QR_RATING_WINDOW_MS: Millis = 30 * 60_000;

/// What a press may rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressTarget {
    /// A terminal at the counter (keypad, kiosk): the prompt open at that moment, else a bare press.
    Prompt,
    /// A QR code: the open prompt, else the window's latest ended service if it ended within
    /// [`QR_RATING_WINDOW_MS`] and is unrated. Only the latest: walking back to older services
    /// would let one phone rate other customers' services.
    PromptOrRecentService,
}

/// The window's situation at the moment a press counts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptState {
    /// The service whose prompt is open at that moment, and whether it has a counted rating.
    pub open_prompt: Option<(i64, bool)>,
    /// The latest service ended within [`QR_RATING_WINDOW_MS`] before that moment, and whether it
    /// has a counted rating.
    pub recent_service: Option<(i64, bool)>,
    /// Whether a counted bare press lies within the press interval of this one.
    pub bare_press_nearby: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Counts, as the rating of this service (None: a bare press that counts).
    Count(Option<i64>),
    /// Kept, not counted, for this reason code.
    Keep(&'static str),
}

pub fn decide(state: &PromptState, settings: &EvaluationSettings, target: PressTarget) -> Decision {
    let rate = |(service, rated): (i64, bool)| {
        if rated {
            Decision::Keep("already_rated")
        } else {
            Decision::Count(Some(service))
        }
    };
    match (state.open_prompt, target) {
        (Some(prompt), _) => rate(prompt),
        (None, PressTarget::PromptOrRecentService) => state
            .recent_service
            .map_or(Decision::Keep("no_service"), rate),
        (None, PressTarget::Prompt) if !settings.bare_presses_count => Decision::Keep("no_prompt"),
        (None, PressTarget::Prompt) if state.bare_press_nearby => {
            Decision::Keep("duplicate_interval")
        }
        (None, PressTarget::Prompt) => Decision::Count(None),
    }
}

/// Whether a prompt opened at `ended_at` is still open at `t`: within the time limit and before
/// the window's next Start.
pub fn prompt_open_at(
    ended_at: Millis,
    next_start: Option<Millis>,
    timeout_seconds: i64,
    t: Millis,
) -> bool {
    t >= ended_at && t < ended_at + timeout_seconds * 1000 && next_start.is_none_or(|s| t < s)
}

/// Whether a service that ended at `ended_at` may still be rated from a QR code at `t`.
pub fn qr_rating_open_at(ended_at: Millis, t: Millis) -> bool {
    t >= ended_at && t < ended_at + QR_RATING_WINDOW_MS
}

/// A satisfaction rate's lower Wilson bound (95 %): ranks 3 presses below 3,000 of the same share.
pub fn wilson_lower_bound(positive: i64, total: i64) -> Option<f64> {
    if total <= 0 {
        return None;
    }
    let (n, p, z) = (total as f64, positive as f64 / total as f64, 1.959_964f64);
    Some(
        (p + z * z / (2.0 * n) - z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt())
            / (1.0 + z * z / n),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_settings_are_valid() {
        let s = EvaluationSettings::default();
        s.validate().unwrap();
        assert_eq!(
            s.options
                .iter()
                .map(|o| o.label.as_str())
                .collect::<Vec<_>>(),
            ["非常满意", "满意", "一般", "不满意"]
        );
        assert_eq!(
            s.option("dissatisfied").unwrap().polarity,
            Polarity::Negative
        );
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let mut s = EvaluationSettings::default();
        s.options[1].key = "very_satisfied".into();
        assert_eq!(s.validate().unwrap_err().field, "options[1].key");
        let mut s = EvaluationSettings::default();
        s.options.truncate(1);
        assert_eq!(s.validate().unwrap_err().field, "options");
        let s = EvaluationSettings {
            rating_timeout_seconds: 0,
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().field, "rating_timeout_seconds");
        let mut s = EvaluationSettings::default();
        s.options
            .iter_mut()
            .for_each(|o| o.polarity = Polarity::Negative);
        assert_eq!(s.validate().unwrap_err().code, "no_positive");
    }

    #[test]
    fn clock_policy() {
        let now = 1_000_000_000_000;
        assert_eq!(
            effective_time(now - 2_000, None, now),
            PressTime::At(now - 2_000)
        );
        // a terminal 60 s behind: its sent_at tells, and the press lands at the right moment
        assert_eq!(
            effective_time(now - 62_000, Some(now - 60_000), now),
            PressTime::At(now - 2_000)
        );
        // from the future: receipt time
        assert_eq!(
            effective_time(now + 3_600_000, None, now),
            PressTime::At(now)
        );
        // a few ms ahead is jitter, never later than receipt
        assert_eq!(effective_time(now + 1_000, None, now), PressTime::At(now));
        assert_eq!(
            effective_time(now - MAX_AGE_MS - 1, None, now),
            PressTime::TooOld
        );
        assert_eq!(
            effective_time(now - MAX_AGE_MS + 1, None, now),
            PressTime::At(now - MAX_AGE_MS + 1)
        );
    }

    #[test]
    fn decisions() {
        let mut s = EvaluationSettings::default();
        let counter = PressTarget::Prompt;
        let open = |rated| PromptState {
            open_prompt: Some((7, rated)),
            recent_service: Some((7, rated)),
            bare_press_nearby: false,
        };
        assert_eq!(decide(&open(false), &s, counter), Decision::Count(Some(7)));
        assert_eq!(
            decide(&open(true), &s, counter),
            Decision::Keep("already_rated")
        );
        let bare = PromptState {
            open_prompt: None,
            recent_service: None,
            bare_press_nearby: false,
        };
        assert_eq!(decide(&bare, &s, counter), Decision::Keep("no_prompt"));
        s.bare_presses_count = true;
        assert_eq!(decide(&bare, &s, counter), Decision::Count(None));
        assert_eq!(
            decide(
                &PromptState {
                    bare_press_nearby: true,
                    ..bare.clone()
                },
                &s,
                counter
            ),
            Decision::Keep("duplicate_interval")
        );
        assert!(prompt_open_at(100, None, 30, 100));
        assert!(!prompt_open_at(100, None, 30, 30_100));
        assert!(!prompt_open_at(100, Some(5_000), 30, 5_000));
        assert!(!prompt_open_at(100, None, 30, 99));
    }

    #[test]
    fn qr_presses_rate_the_latest_service_for_a_while() {
        // bare presses counting or not, a QR press never makes a bare rating
        let s = EvaluationSettings {
            bare_presses_count: true,
            ..Default::default()
        };
        let qr = PressTarget::PromptOrRecentService;
        let state = |open_prompt, recent_service| PromptState {
            open_prompt,
            recent_service,
            bare_press_nearby: false,
        };
        assert_eq!(
            decide(&state(Some((7, false)), Some((7, false))), &s, qr),
            Decision::Count(Some(7))
        );
        // the prompt closed, the service is still recent and unrated
        assert_eq!(
            decide(&state(None, Some((7, false))), &s, qr),
            Decision::Count(Some(7))
        );
        assert_eq!(
            decide(&state(None, Some((7, true))), &s, qr),
            Decision::Keep("already_rated")
        );
        assert_eq!(
            decide(&state(None, None), &s, qr),
            Decision::Keep("no_service")
        );
        // an open prompt that was rated is not passed over for an older service
        assert_eq!(
            decide(&state(Some((8, true)), Some((8, true))), &s, qr),
            Decision::Keep("already_rated")
        );
        assert!(qr_rating_open_at(1_000, 1_000));
        assert!(qr_rating_open_at(1_000, 1_000 + QR_RATING_WINDOW_MS - 1));
        assert!(!qr_rating_open_at(1_000, 1_000 + QR_RATING_WINDOW_MS));
        assert!(!qr_rating_open_at(1_000, 999));
    }

    #[test]
    fn wilson_ranks_volume() {
        let small = wilson_lower_bound(3, 3).unwrap();
        let large = wilson_lower_bound(2_900, 3_000).unwrap();
        assert!(large > small, "{large} vs {small}");
        assert_eq!(wilson_lower_bound(0, 0), None);
    }

    proptest! {
        /// Whatever the times, the effective time is never after receipt, and a too-old press is
        /// exactly one whose corrected time is more than the maximum age before receipt.
        #[test]
        fn effective_time_is_bounded(pressed in -1_000_000_000i64..1_000_000_000, sent in proptest::option::of(-1_000_000_000i64..1_000_000_000), received in 0i64..1_000_000_000) {
            let base = 1_700_000_000_000i64;
            match effective_time(base + pressed, sent.map(|s| base + s), base + received) {
                PressTime::At(t) => {
                    prop_assert!(t <= base + received);
                    prop_assert!(t >= base + received - MAX_AGE_MS);
                }
                PressTime::TooOld => {
                    let corrected = base + pressed + sent.map_or(0, |s| received - s);
                    prop_assert!(corrected < base + received - MAX_AGE_MS);
                }
            }
        }

        /// A service never gets two counted ratings, whatever sequence of counter and QR presses
        /// it sees, with its prompt open or closed.
        #[test]
        fn one_counted_rating_per_service(presses in proptest::collection::vec((any::<bool>(), any::<bool>()), 1..20)) {
            let s = EvaluationSettings::default();
            let mut rated = false;
            let mut counted = 0;
            for (qr, prompt_open) in presses {
                let state = PromptState {
                    open_prompt: prompt_open.then_some((1, rated)),
                    recent_service: Some((1, rated)),
                    bare_press_nearby: false,
                };
                let target = if qr { PressTarget::PromptOrRecentService } else { PressTarget::Prompt };
                if let Decision::Count(Some(_)) = decide(&state, &s, target) {
                    counted += 1;
                    rated = true;
                }
            }
            prop_assert!(counted <= 1);
        }
    }
}
