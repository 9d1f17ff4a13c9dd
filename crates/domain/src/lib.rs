//! keping's rules, free of I/O: what an org tree may look like, who may see what,
//! what counts as a valid name or password. `store` and `web` build on these.

pub mod auth;
pub mod customer_quality;
pub mod customers;
pub mod data;
pub mod evaluation;
pub mod grading;
pub mod notify;
pub mod org;
pub mod reports;
pub mod scope;
pub mod stats;
pub mod validate;

pub use validate::Invalid;

/// Milliseconds since the Unix epoch, UTC: the one time type stored anywhere.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 with milliseconds, as every API answer shows times.
pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `serialize_with` for stored milliseconds that the API shows as RFC 3339.
pub fn ser_time<S: serde::Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

pub fn ser_opt_time<S: serde::Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}
