//! Attachments (附件): files kept with a customer, such as contracts, business licences and
//! photos of a site visit. Whoever sees the customer sees and downloads them; whoever may change
//! it adds and removes them. Each addition and removal is on the timeline and in the audit log;
//! merges take them over, and undoing an import removes them with its customers.

use super::{editable, event, require, row_for};
use crate::{Db, Result, Sql, StoreError};
use keping_domain::scope::Scope;
use keping_domain::{now_millis, ser_time, Invalid, Millis};
use serde::Serialize;
use utoipa::ToSchema;

/// The largest file kept (20 MiB).
pub const MAX_ATTACHMENT_BYTES: usize = 20 * 1024 * 1024;
/// At most this many files per customer.
pub const MAX_ATTACHMENTS: i64 = 100;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Attachment {
    pub id: i64,
    pub customer_id: i64,
    pub file_name: String,
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    pub uploaded_by_name: Option<String>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String)]
    pub created_at: Millis,
}

const SELECT: &str = "SELECT a.id, a.customer_id, a.file_name, a.content_type, a.size, u.name AS uploaded_by_name, a.created_at FROM customer_attachments a LEFT JOIN users u ON u.id = a.uploaded_by";

/// A file name fit to keep and to send back in a header: no path, no control characters.
fn clean_name(name: &str) -> std::result::Result<String, Invalid> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        return Err(Invalid::new(
            "file",
            "required",
            "the file has no name: choose a file to attach",
        ));
    }
    if cleaned.chars().count() > 200 {
        return Err(Invalid::new(
            "file",
            "too_long",
            "the file name is longer than 200 characters",
        ));
    }
    Ok(cleaned.to_string())
}

pub async fn list(db: &Db, scope: &Scope, customer_id: i64) -> Result<Vec<Attachment>> {
    require(scope, "customer.view")?;
    let mut tx = db.read().await?;
    row_for(&mut *tx, scope, "customer.view", customer_id).await?;
    let rows = Sql::new(SELECT)
        .push(" WHERE a.customer_id = ")
        .arg(customer_id)
        .push(" ORDER BY a.id DESC")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Keeps a file with a customer the caller may change.
pub async fn add(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    file_name: &str,
    content_type: Option<&str>,
    data: &[u8],
) -> Result<Attachment> {
    let file_name = clean_name(file_name)?;
    if data.is_empty() {
        return Err(Invalid::new("file", "empty", "the file is empty").into());
    }
    if data.len() > MAX_ATTACHMENT_BYTES {
        return Err(Invalid::new(
            "file",
            "too_large",
            format!(
                "the file has {} bytes; at most {} MiB can be attached",
                data.len(),
                MAX_ATTACHMENT_BYTES / 1024 / 1024
            ),
        )
        .into());
    }
    let content_type = content_type
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 100 && t.contains('/'))
        .unwrap_or("application/octet-stream");
    let mut tx = db.begin().await?;
    let customer = editable(&mut tx, scope, customer_id).await?;
    let (count,): (i64,) =
        Sql::new("SELECT COUNT(*) FROM customer_attachments WHERE customer_id = ")
            .arg(customer_id)
            .fetch_one(&mut *tx)
            .await?;
    if count >= MAX_ATTACHMENTS {
        return Err(Invalid::new(
            "file",
            "too_many",
            format!("a customer keeps at most {MAX_ATTACHMENTS} files: remove one first"),
        )
        .into());
    }
    let id = Sql::new("INSERT INTO customer_attachments (customer_id, file_name, content_type, size, data, uploaded_by, created_at) VALUES (")
        .arg(customer_id)
        .push(", ")
        .arg(&file_name)
        .push(", ")
        .arg(content_type)
        .push(", ")
        .arg(data.len() as i64)
        .push(", ")
        .arg(Some(data.to_vec()))
        .push(", ")
        .arg(scope.user_id)
        .push(", ")
        .arg(now_millis())
        .push(") RETURNING id")
        .fetch_i64(&mut *tx)
        .await?;
    event(
        &mut tx,
        scope,
        customer_id,
        &customer.org_path,
        "add_attachment",
        file_name,
        None,
    )
    .await?;
    let a: Attachment = Sql::new(SELECT)
        .push(" WHERE a.id = ")
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(a)
}

/// A file of a customer the caller sees, with its bytes.
pub async fn get(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    id: i64,
) -> Result<(Attachment, Vec<u8>)> {
    require(scope, "customer.view")?;
    let mut tx = db.read().await?;
    row_for(&mut *tx, scope, "customer.view", customer_id).await?;
    let a: Attachment = Sql::new(SELECT)
        .push(" WHERE a.id = ")
        .arg(id)
        .push(" AND a.customer_id = ")
        .arg(customer_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let (data,): (Vec<u8>,) = Sql::new("SELECT data FROM customer_attachments WHERE id = ")
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((a, data))
}

pub async fn delete(db: &Db, scope: &Scope, customer_id: i64, id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let customer = editable(&mut tx, scope, customer_id).await?;
    let (file_name,): (String,) =
        Sql::new("SELECT file_name FROM customer_attachments WHERE id = ")
            .arg(id)
            .push(" AND customer_id = ")
            .arg(customer_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
    Sql::new("DELETE FROM customer_attachments WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    event(
        &mut tx,
        scope,
        customer_id,
        &customer.org_path,
        "delete_attachment",
        file_name,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::clean_name;

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(
            clean_name("C:\\合同\\2026 合同.pdf").unwrap(),
            "2026 合同.pdf"
        );
        assert_eq!(clean_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(clean_name("a\"b\r\n.txt").unwrap(), "ab.txt");
        assert_eq!(clean_name("   ").unwrap_err().code, "required");
        assert_eq!(clean_name("dir/..").unwrap_err().code, "required");
        assert_eq!(clean_name(&"长".repeat(201)).unwrap_err().code, "too_long");
    }
}
