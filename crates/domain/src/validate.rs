//! Field rules shared by the API, the pages and imports. Each failure names its field.

use std::fmt;

/// A value that broke a rule: which field, a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for Invalid {}

/// Trims a required text field and checks its length in characters (not bytes: names are Chinese).
pub fn required_text(field: &str, value: &str, max_chars: usize) -> Result<String, Invalid> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new(
            field,
            "required",
            format!("{field} must not be empty"),
        ));
    }
    let n = trimmed.chars().count();
    if n > max_chars {
        return Err(Invalid::new(
            field,
            "too_long",
            format!("{field} is {n} characters long; at most {max_chars} are allowed"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            "invalid_characters",
            format!("{field} contains control characters"),
        ));
    }
    Ok(trimmed.to_string())
}

/// An optional text field: empty means absent.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> Result<Option<String>, Invalid> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => required_text(field, v, max_chars).map(Some),
    }
}

/// Codes (org codes, window codes, usernames, employee numbers): letters, digits, `-`, `_`, `.`.
pub fn code(field: &str, value: &str, max_chars: usize) -> Result<String, Invalid> {
    let v = required_text(field, value, max_chars)?;
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Invalid::new(
            field,
            "invalid_format",
            format!("{field} may contain only letters, digits, '-', '_' and '.'"),
        ));
    }
    Ok(v)
}

pub fn username(value: &str) -> Result<String, Invalid> {
    code("username", value, 64).map(|u| u.to_lowercase())
}

pub const MIN_PASSWORD_CHARS: usize = 8;

/// A password long enough and not trivially guessable; its content is never echoed back.
pub fn password(field: &str, value: &str) -> Result<(), Invalid> {
    let n = value.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(Invalid::new(
            field,
            "too_short",
            format!("the password must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > 128 {
        return Err(Invalid::new(
            field,
            "too_long",
            "the password must have at most 128 characters",
        ));
    }
    let first = value.chars().next();
    if value.chars().all(|c| Some(c) == first) {
        return Err(Invalid::new(
            field,
            "too_weak",
            "the password must not repeat a single character",
        ));
    }
    Ok(())
}

pub fn email(field: &str, value: &str) -> Result<String, Invalid> {
    let v = required_text(field, value, 254)?;
    let ok = match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !v.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    };
    if ok {
        Ok(v)
    } else {
        Err(Invalid::new(
            field,
            "invalid_email",
            format!("'{v}' is not an e-mail address"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lengths_count_characters_not_bytes() {
        assert!(required_text("name", "中国工商银行北京分行", 10).is_ok());
        let err = required_text("name", "中国工商银行北京分行营", 10).unwrap_err();
        assert_eq!(err.code, "too_long");
        assert_eq!(
            required_text("name", "  ", 10).unwrap_err().code,
            "required"
        );
    }

    #[test]
    fn codes_and_passwords() {
        assert_eq!(code("code", "BJ-01", 32).unwrap(), "BJ-01");
        assert_eq!(code("code", "北京", 32).unwrap_err().code, "invalid_format");
        assert_eq!(username("Admin").unwrap(), "admin");
        assert!(password("password", "short").is_err());
        assert_eq!(
            password("password", "aaaaaaaaaa").unwrap_err().code,
            "too_weak"
        );
        assert!(password("password", "correct horse").is_ok());
        assert!(email("email", "a@b.cn").is_ok());
        assert!(email("email", "a@b").is_err());
    }
}
