//! Persistence for keping: one code path over SQLite and PostgreSQL.
//!
//! SQL is written once, with `$1`-style parameters (SQLite reads them too) and portable types:
//! i64 ids, i64 UTC milliseconds, TEXT, JSON as TEXT. Every read and write of scoped data takes the
//! caller's [`Scope`](keping_domain::scope::Scope) and filters in SQL.

mod db;
mod error;
mod migrate;

pub mod accounts;
pub mod audit;
pub mod backup;
pub mod customers;
pub mod data;
pub mod evaluation;
pub mod grading;
pub mod grading_notices;
pub mod grading_settings;
pub mod history;
pub mod notify;
pub mod org;
pub mod press;
pub mod reports;
mod settings;
pub mod stats;
pub mod tokens;

pub use db::{Backend, Db, Page, Sql};
pub use error::StoreError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Forbidden (403) unless the caller holds `permission` somewhere.
pub(crate) fn require(scope: &keping_domain::scope::Scope, permission: &'static str) -> Result<()> {
    if scope.has(permission) {
        Ok(())
    } else {
        Err(StoreError::Forbidden(permission))
    }
}
