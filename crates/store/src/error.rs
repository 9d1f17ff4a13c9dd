use keping_domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Does not exist, or lies outside the caller's scope: the two look the same on purpose.
    #[error("not found")]
    NotFound,
    /// The caller holds no permission for this kind of action at all.
    #[error("permission {0} is required")]
    Forbidden(&'static str),
    #[error("{0}")]
    Invalid(#[from] Invalid),
    /// A unique key is taken, or the object's state forbids the change.
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        code: &'static str,
        message: String,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub fn conflict(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            field: Some(field.to_string()),
            code,
            message: message.into(),
        }
    }

    /// `on_unique` for a result's error, keeping other errors as they are.
    pub(crate) fn unique(self, fields: &[&str]) -> Self {
        match self {
            StoreError::Database(e) => Self::on_unique(e, fields),
            e => e,
        }
    }

    /// Turns a unique-index violation on one of `fields` into a conflict naming the field.
    /// Indexes are named `<table>_<field>`, so both SQLite's and PostgreSQL's messages name it.
    fn on_unique(err: sqlx::Error, fields: &[&str]) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                let text = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
                if let Some(f) = fields.iter().find(|f| text.contains(*f)) {
                    return Self::conflict(f, "duplicate", format!("this {f} is already taken"));
                }
                return Self::Conflict {
                    field: None,
                    code: "duplicate",
                    message: "a unique key is already taken".into(),
                };
            }
        }
        Self::Database(err)
    }
}
