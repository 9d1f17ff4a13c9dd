//! Chinese first, English on request. The locale travels with each request; nothing process-wide
//! is switched (rust-i18n's `set_locale` would change it for every request at once).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Locale {
    #[default]
    #[serde(rename = "zh-CN")]
    Zh,
    #[serde(rename = "en")]
    En,
}

impl Locale {
    pub fn parse(s: &str) -> Locale {
        if s.to_ascii_lowercase().starts_with("en") {
            Locale::En
        } else {
            Locale::Zh
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Locale::Zh => "zh-CN",
            Locale::En => "en",
        }
    }

    /// The first language of an Accept-Language header that keping speaks.
    pub fn from_accept_language(header: Option<&str>) -> Locale {
        header
            .and_then(|h| {
                h.split(',')
                    .map(|l| {
                        l.split(';')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase()
                    })
                    .find(|l| l.starts_with("zh") || l.starts_with("en"))
            })
            .map_or(Locale::Zh, |l| Locale::parse(&l))
    }

    /// The text for `key` in this locale (Chinese where an English text is missing).
    pub fn t(self, key: &str) -> String {
        rust_i18n::t!(key, locale = self.code()).into_owned()
    }

    /// The text for `key`, or None when the catalogue has no such key (for codes that come from data).
    pub fn try_t(self, key: &str) -> Option<String> {
        crate::_rust_i18n_try_translate(self.code(), key).map(std::borrow::Cow::into_owned)
    }

    /// One of two texts that come with the data (permission and data level names), not the catalogue.
    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        if self.is_en() {
            en
        } else {
            zh
        }
    }

    pub fn is_en(self) -> bool {
        self == Locale::En
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales() {
        assert_eq!(
            Locale::from_accept_language(Some("en-US,en;q=0.9")),
            Locale::En
        );
        assert_eq!(
            Locale::from_accept_language(Some("fr, zh-CN;q=0.8")),
            Locale::Zh
        );
        assert_eq!(Locale::from_accept_language(None), Locale::Zh);
        assert_eq!(Locale::En.t("nav.orgs"), "Orgs");
        assert_eq!(Locale::Zh.t("nav.orgs"), "机构设置");
        assert_eq!(Locale::En.try_t("nav.orgs").as_deref(), Some("Orgs"));
        assert_eq!(Locale::En.try_t("no.such.key"), None);
    }
}
