//! Excel/CSV import of customers (with a first contact each), its undo, and export to xlsx.
//!
//! An import runs in one transaction: a dry run goes through exactly the same steps and rolls
//! back, so its report is what the real run would do. Rejected rows are reported with the row
//! number the spreadsheet shows, the column letter, the field and the reason; they are never
//! half-written.

use super::{
    check, contact_values, delete_terms, event, field_defs, org_within, push_field_values, reindex,
    require, set_tags, ContactFields, CustomerFilter, CustomerInput, Fields, CONTACT_COLUMNS,
    FIELD_COLUMNS,
};
use crate::audit::{self, Changes, Entry};
use crate::db::{enlarge_page_cache, push_quoted, restore_page_cache, Backend};
use crate::{Db, Result, Sql, StoreError};
use keping_domain::customers::{
    self as rules, CustomerKind, DuplicateMode, FieldDef, Importance, Phone, IMPORT_FIELDS,
};
use keping_domain::now_millis;
use keping_domain::org::OrgPath;
use keping_domain::scope::Scope;
use keping_domain::validate::Invalid;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{Any, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use utoipa::ToSchema;

/// At most this many data rows per file.
pub const MAX_IMPORT_ROWS: usize = 200_000;

/// The uploaded file.
pub struct ImportSource {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

pub struct ImportOptions {
    /// Sheet header → field (a field of [`IMPORT_FIELDS`] or `custom.<code>`); None: recognised by itself.
    pub mapping: Option<HashMap<String, String>>,
    pub dry_run: bool,
    pub duplicates: DuplicateMode,
    /// The org the customers go to; default the caller's.
    pub org_id: Option<i64>,
    /// Kept up to date while the import runs, for a caller polling it.
    pub progress: Option<Arc<ImportProgress>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportRejection {
    /// The row number as the spreadsheet shows it.
    pub row: usize,
    /// The column letter (A, B…), when one column is at fault.
    pub column: Option<String>,
    pub field: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportDuplicate {
    pub row: usize,
    /// The customer on file, when the caller may see it.
    pub customer_id: Option<i64>,
    /// same_phone or same_name_company (with a customer on file), or same_as_row (earlier in the file).
    pub reason: String,
    /// What was done: skipped, updated or imported.
    pub action: String,
    /// The earlier row of this file it repeats.
    pub same_as_row: Option<usize>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportOutcome {
    /// None for a dry run.
    pub import_id: Option<i64>,
    /// Data rows read (below the header row).
    pub rows: usize,
    /// Rows that are (or, in a dry run, would be) created or update a customer.
    pub accepted: usize,
    pub created: usize,
    pub updated: usize,
    pub rejected: Vec<ImportRejection>,
    pub duplicates: Vec<ImportDuplicate>,
    /// The row number of the header row found.
    pub header_row: usize,
    /// Column header → field, as used.
    pub mapping: Vec<(String, String)>,
    /// Headers no field was recognised for; their columns were not read.
    pub ignored_columns: Vec<String>,
}

// ---------------------------------------------------------------- reading files

/// A cell as read: text, a number, or a date Excel stored as a serial number.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Date(f64),
    Error(String),
}

impl Cell {
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Cell::Empty | Cell::Error(_) => None,
            Cell::Text(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            // 13800138000 arrives as 13800138000.0; whole numbers lose the fraction
            Cell::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(format!("{}", *n as i64)),
            Cell::Number(n) => Some(n.to_string()),
            Cell::Date(serial) => {
                rules::excel_date(*serial).map(|d| d.format("%Y-%m-%d").to_string())
            }
        }
    }
}

pub(crate) struct Sheet {
    /// The spreadsheet's row number of `rows[0]`.
    pub(crate) first_row: usize,
    pub(crate) rows: Vec<Vec<Cell>>,
}

fn unreadable(why: impl Into<String>) -> StoreError {
    Invalid::new("file", "unreadable_file", why).into()
}

pub(crate) fn read_sheet(src: &ImportSource) -> Result<Sheet> {
    let name = src.file_name.to_lowercase();
    let zip = src.bytes.starts_with(b"PK\x03\x04");
    let ole = src.bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]);
    if zip || ole || name.ends_with(".xlsx") || name.ends_with(".xls") {
        read_workbook(&src.bytes)
    } else {
        read_csv(&src.bytes)
    }
}

fn read_workbook(bytes: &[u8]) -> Result<Sheet> {
    use calamine::{Data, Reader};
    let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e| unreadable(format!("the file is not a readable Excel workbook ({e})")))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| unreadable("the workbook has no sheet"))?
        .map_err(|e| unreadable(format!("the first sheet cannot be read ({e})")))?;
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let rows = range
        .rows()
        .map(|r| {
            // cells left of the used range are empty; keep column letters right
            std::iter::repeat_n(Cell::Empty, first_col as usize)
                .chain(r.iter().map(|d| match d {
                    Data::Empty => Cell::Empty,
                    Data::String(s) => Cell::Text(s.clone()),
                    Data::Int(i) => Cell::Number(*i as f64),
                    Data::Float(f) => Cell::Number(*f),
                    Data::Bool(b) => Cell::Text(b.to_string()),
                    Data::DateTime(dt) => Cell::Date(dt.as_f64()),
                    Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
                    Data::Error(e) => Cell::Error(e.to_string()),
                }))
                .collect()
        })
        .collect();
    Ok(Sheet {
        first_row: first_row as usize + 1,
        rows,
    })
}

/// CSV in UTF-8 (with or without BOM) or GBK, as Excel in China saves it.
fn read_csv(bytes: &[u8]) -> Result<Sheet> {
    let text = match std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)) {
        Ok(t) => t.to_string(),
        Err(_) => encoding_rs::GBK
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|t| t.into_owned())
            .ok_or_else(|| {
                unreadable("the file is neither UTF-8 nor GBK text, nor an Excel workbook")
            })?,
    };
    if text.contains('\0') {
        return Err(unreadable(
            "the file holds binary data; send xlsx, xls or csv",
        ));
    }
    Ok(Sheet {
        first_row: 1,
        rows: parse_csv(&text)
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|c| {
                        if c.is_empty() {
                            Cell::Empty
                        } else {
                            Cell::Text(c)
                        }
                    })
                    .collect()
            })
            .collect(),
    })
}

/// RFC 4180: commas (or semicolons/tabs when the first line has none), quotes doubled inside quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let first_line = text.lines().next().unwrap_or_default();
    let sep = if first_line.contains(',') || first_line.contains('"') {
        ','
    } else if first_line.contains('\t') {
        '\t'
    } else if first_line.contains(';') {
        ';'
    } else {
        ','
    };
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                _ => cell.push(c),
            }
        } else if c == '"' && cell.is_empty() {
            quoted = true;
        } else if c == sep {
            row.push(std::mem::take(&mut cell));
        } else if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            row.push(std::mem::take(&mut cell));
            rows.push(std::mem::take(&mut row));
        } else {
            cell.push(c);
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

/// A for the first column, Z, AA…
pub(crate) fn column_letter(index: usize) -> String {
    let mut n = index + 1;
    let mut s = Vec::new();
    while n > 0 {
        let r = (n - 1) % 26;
        s.push(b'A' + r as u8);
        n = (n - 1) / 26;
    }
    s.reverse();
    String::from_utf8(s).expect("ASCII letters")
}

// ---------------------------------------------------------------- the import

/// Which column holds which field.
struct Columns {
    /// field → column index
    by_field: HashMap<String, usize>,
    used: Vec<(String, String)>,
    ignored: Vec<String>,
}

fn columns(
    header: &[String],
    mapping: Option<&HashMap<String, String>>,
    defs: &[FieldDef],
) -> Result<Columns> {
    let known = |f: &str| -> bool {
        IMPORT_FIELDS.contains(&f)
            || f.strip_prefix("custom.")
                .is_some_and(|c| defs.iter().any(|d| d.code == c))
    };
    let mut by_field = HashMap::new();
    let mut used = Vec::new();
    let mut ignored = Vec::new();
    if let Some(m) = mapping {
        for (h, f) in m {
            if !known(f) {
                return Err(Invalid::new(
                    "mapping",
                    "unknown_field",
                    format!(
                        "'{f}' (for column '{h}') is not a field customers can be imported into"
                    ),
                )
                .into());
            }
            if !header.iter().any(|x| x.trim() == h.trim()) {
                return Err(Invalid::new(
                    "mapping",
                    "unknown_column",
                    format!("the sheet has no column '{h}'"),
                )
                .into());
            }
        }
    }
    for (i, h) in header.iter().enumerate() {
        let h = h.trim();
        if h.is_empty() {
            continue;
        }
        let field = match mapping {
            Some(m) => m.get(h).cloned(),
            None => rules::header_field(h).map(str::to_string).or_else(|| {
                defs.iter()
                    .find(|d| d.label == h || d.code == h)
                    .map(|d| format!("custom.{}", d.code))
            }),
        };
        match field {
            // a second phone column (手机 and 电话) becomes the contact's landline
            Some(f)
                if f == "phone"
                    && by_field.contains_key("phone")
                    && !by_field.contains_key("contact_phone") =>
            {
                by_field.insert("contact_phone".to_string(), i);
                used.push((h.to_string(), "contact_phone".to_string()));
            }
            Some(f) if !by_field.contains_key(&f) => {
                by_field.insert(f.clone(), i);
                used.push((h.to_string(), f));
            }
            _ => ignored.push(h.to_string()),
        }
    }
    if !by_field.contains_key("name") && !by_field.contains_key("company") {
        return Err(Invalid::new(
            "file",
            "no_name_column",
            "no column holds the customer's name (客户名称, 单位名称, 公司名称 or name)",
        )
        .into());
    }
    Ok(Columns {
        by_field,
        used,
        ignored,
    })
}

/// A row read into the fields of a customer and of its first contact.
struct RowInput {
    customer: CustomerInput,
    contact: Option<super::ContactInput>,
}

fn row_input(cells: &[Cell], cols: &Columns) -> std::result::Result<RowInput, (String, String)> {
    let get = |f: &str| -> Option<String> {
        cols.by_field
            .get(f)
            .and_then(|&i| cells.get(i))
            .and_then(Cell::text)
    };
    for (f, &i) in &cols.by_field {
        if let Some(Cell::Error(e)) = cells.get(i) {
            return Err((
                f.clone(),
                format!("the cell holds an error ({e}); fix the formula"),
            ));
        }
    }
    let company = get("company");
    let name = get("name").or_else(|| company.clone());
    let mut custom = Map::new();
    for (f, &i) in &cols.by_field {
        if let Some(code) = f.strip_prefix("custom.") {
            let v = match cells.get(i) {
                Some(Cell::Number(n)) => serde_json::Number::from_f64(*n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                Some(Cell::Date(d)) => Value::from(*d),
                Some(c) => c.text().map(Value::String).unwrap_or(Value::Null),
                None => Value::Null,
            };
            custom.insert(code.to_string(), v);
        }
    }
    let tags = get("tags").map(|t| {
        t.split([',', '，', ';', '；', '、'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    });
    let contact = get("contact_name").map(|n| super::ContactInput {
        name: Some(n),
        title: get("contact_title"),
        department: get("contact_department"),
        phone: get("contact_phone"),
        ..Default::default()
    });
    Ok(RowInput {
        customer: CustomerInput {
            kind: get("kind"),
            is_company: Some(company.is_some() || get("name").is_none()),
            name,
            company,
            code: get("code"),
            phone: get("phone"),
            email: get("email"),
            address: get("address"),
            region: get("region"),
            industry: get("industry"),
            source: get("source"),
            customer_group: get("customer_group"),
            tags,
            importance: get("importance"),
            intent: get("intent"),
            hobbies: get("hobbies"),
            birthday: get("birthday"),
            notes: get("notes"),
            custom: Some(custom),
            ..Default::default()
        },
        contact,
    })
}

/// The stages of an import, as a caller polling its progress sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportPhase {
    /// The file is being read.
    Reading,
    /// Rows are being checked, and looked up among the customers on file.
    Checking,
    /// Customers are being written.
    Writing,
    /// The import has ended (imported, or failed: the answer to the upload says which).
    Done,
}

/// How far a running import has got; shared with whoever polls it.
#[derive(Debug, Default)]
pub struct ImportProgress {
    phase: AtomicU8,
    rows_done: AtomicUsize,
    rows_total: AtomicUsize,
}

impl ImportProgress {
    /// The phase, the rows done in it and the data rows of the file (0 while it is being read).
    pub fn get(&self) -> (ImportPhase, usize, usize) {
        let phase = match self.phase.load(Ordering::Relaxed) {
            0 => ImportPhase::Reading,
            1 => ImportPhase::Checking,
            2 => ImportPhase::Writing,
            _ => ImportPhase::Done,
        };
        (
            phase,
            self.rows_done.load(Ordering::Relaxed),
            self.rows_total.load(Ordering::Relaxed),
        )
    }

    fn enter(&self, phase: ImportPhase) {
        self.rows_done.store(0, Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Marks the import ended (also when it failed: the answer to the upload says how).
    pub fn finish(&self) {
        self.rows_done
            .store(self.rows_total.load(Ordering::Relaxed), Ordering::Relaxed);
        self.phase.store(ImportPhase::Done as u8, Ordering::Relaxed);
    }
}

/// A data row after the checks: rejected, or the customer (and contact) it would write.
enum Prepared {
    Blank,
    Rejected(ImportRejection),
    Row(Box<Checked>),
}

struct Checked {
    row_no: usize,
    customer: CustomerInput,
    fields: Fields,
    contact: Option<ContactFields>,
}

/// Reads and checks every data row of the sheet (no database work).
fn prepare(
    sheet: &Sheet,
    header_at: usize,
    cols: &Columns,
    defs: &[FieldDef],
    progress: &ImportProgress,
) -> Vec<Prepared> {
    let column_of = |field: &str| column_of(cols, field);
    let reject = |row, field: String, reason| {
        Prepared::Rejected(ImportRejection {
            row,
            column: column_of(&field),
            field: Some(field),
            reason,
        })
    };
    let mut out = Vec::with_capacity(sheet.rows.len().saturating_sub(header_at + 1));
    for (i, cells) in sheet.rows.iter().enumerate().skip(header_at + 1) {
        if i % 1000 == 0 {
            progress.rows_done.store(i - header_at, Ordering::Relaxed);
        }
        let row_no = sheet.first_row + i;
        if cells
            .iter()
            .all(|c| c.text().is_none() && !matches!(c, Cell::Error(_)))
        {
            out.push(Prepared::Blank);
            continue;
        }
        let input = match row_input(cells, cols) {
            Ok(r) => r,
            Err((field, reason)) => {
                out.push(reject(row_no, field, reason));
                continue;
            }
        };
        let fields = match check(&input.customer, defs) {
            Ok(f) => f,
            Err(e) => {
                let field = if e.field == "name" && !cols.by_field.contains_key("name") {
                    "company".to_string()
                } else {
                    e.field.clone()
                };
                out.push(reject(row_no, field, e.message));
                continue;
            }
        };
        match input.contact.as_ref().map(super::check_contact).transpose() {
            Ok(contact) => out.push(Prepared::Row(Box::new(Checked {
                row_no,
                customer: input.customer,
                fields,
                contact,
            }))),
            Err(e) => out.push(reject(row_no, format!("contact_{}", e.field), e.message)),
        }
    }
    out
}

fn column_of(cols: &Columns, field: &str) -> Option<String> {
    let base = field.split('.').next().unwrap_or(field);
    let key = if base == "custom" { field } else { base };
    cols.by_field.get(key).map(|&i| column_letter(i))
}

/// Lookups answered this many keys to a statement.
const LOOKUP_CHUNK: usize = 1000;

/// The customers on file that rows of an import may repeat, by phone and by name+company key,
/// looked up for all rows at once. It answers each row as the per-row check of
/// [`super::duplicates_of`] would inside the import's transaction: the first five customers by
/// id with the phone, then the first five with the key, and the first of them the caller may see.
/// Customers the rows update are looked up again, so that later rows see them as they now are;
/// the customers the import creates are caught by the file's own earlier rows first.
struct OnFile {
    by_phone: HashMap<String, Vec<i64>>,
    by_key: HashMap<String, Vec<i64>>,
    /// The phones and key each customer found is filed under.
    filed: HashMap<i64, (Vec<String>, Option<String>)>,
    visible: HashSet<i64>,
}

impl OnFile {
    async fn load(
        tx: &mut Transaction<'static, Any>,
        scope: &Scope,
        backend: Backend,
        rows: &[Prepared],
    ) -> Result<OnFile> {
        let mut on_file = OnFile {
            by_phone: HashMap::new(),
            by_key: HashMap::new(),
            filed: HashMap::new(),
            visible: HashSet::new(),
        };
        for r in rows {
            if let Prepared::Row(row) = r {
                let fields = &row.fields;
                if let Some(p) = &fields.phone {
                    on_file.by_phone.entry(p.digits.clone()).or_default();
                }
                on_file
                    .by_key
                    .entry(rules::name_company_key(
                        &fields.name,
                        fields.company.as_deref(),
                    ))
                    .or_default();
            }
        }
        let phones: Vec<String> = on_file.by_phone.keys().cloned().collect();
        for chunk in phones.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::bulk(backend, "SELECT cp.digits, c.id FROM customer_phones cp JOIN customers c ON c.id = cp.customer_id WHERE cp.digits IN (");
            push_texts(&mut sql, chunk);
            let found: Vec<(String, i64)> = sql.fetch_all(&mut **tx).await?;
            for (digits, id) in found {
                on_file.filed.entry(id).or_default().0.push(digits.clone());
                on_file.by_phone.entry(digits).or_default().push(id);
            }
        }
        let keys: Vec<String> = on_file.by_key.keys().cloned().collect();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::bulk(
                backend,
                "SELECT c.name_company_key, c.id FROM customers c WHERE c.name_company_key IN (",
            );
            push_texts(&mut sql, chunk);
            let found: Vec<(String, i64)> = sql.fetch_all(&mut **tx).await?;
            for (key, id) in found {
                on_file.filed.entry(id).or_default().1 = Some(key.clone());
                on_file.by_key.entry(key).or_default().push(id);
            }
        }
        for ids in on_file
            .by_phone
            .values_mut()
            .chain(on_file.by_key.values_mut())
        {
            ids.sort_unstable();
        }
        let ids: Vec<i64> = on_file.filed.keys().copied().collect();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::bulk(
                backend,
                "SELECT c.id FROM customers c JOIN orgs o ON o.id = c.org_id WHERE ",
            );
            sql.in_ids("c.id", chunk).push(" AND ");
            super::reachable(&mut sql, scope, "customer.view");
            let seen: Vec<(i64,)> = sql.fetch_all(&mut **tx).await?;
            on_file.visible.extend(seen.into_iter().map(|(id,)| id));
        }
        Ok(on_file)
    }

    /// Why the row repeats a customer on file (same_phone or same_name_company), and the first
    /// such customer the caller may see.
    fn duplicate_of(&self, f: &Fields, key: &str) -> Option<(&'static str, Option<i64>)> {
        let first5 = |ids: Option<&Vec<i64>>| -> Vec<i64> {
            ids.map(|v| v.iter().take(5).copied().collect())
                .unwrap_or_default()
        };
        let by_phone = first5(f.phone.as_ref().and_then(|p| self.by_phone.get(&p.digits)));
        let by_key = first5(self.by_key.get(key));
        let reason = if !by_phone.is_empty() {
            "same_phone"
        } else if !by_key.is_empty() {
            "same_name_company"
        } else {
            return None;
        };
        let target = by_phone
            .iter()
            .chain(&by_key)
            .find(|id| self.visible.contains(id))
            .copied();
        Some((reason, target))
    }

    /// Files an updated customer under the phones and key it has now.
    async fn refile(&mut self, tx: &mut Transaction<'static, Any>, id: i64) -> Result<()> {
        let (old_phones, old_key) = self.filed.remove(&id).unwrap_or_default();
        for p in &old_phones {
            if let Some(ids) = self.by_phone.get_mut(p) {
                ids.retain(|&x| x != id);
            }
        }
        if let Some(ids) = old_key.as_ref().and_then(|k| self.by_key.get_mut(k)) {
            ids.retain(|&x| x != id);
        }
        let phones: Vec<(String,)> =
            Sql::new("SELECT digits FROM customer_phones WHERE customer_id = ")
                .arg(id)
                .fetch_all(&mut **tx)
                .await?;
        let (key,): (String,) = Sql::new("SELECT name_company_key FROM customers WHERE id = ")
            .arg(id)
            .fetch_one(&mut **tx)
            .await?;
        let file = |ids: &mut Vec<i64>| {
            if let Err(at) = ids.binary_search(&id) {
                ids.insert(at, id);
            }
        };
        let mut filed = (Vec::new(), None);
        for (p,) in phones {
            if let Some(ids) = self.by_phone.get_mut(&p) {
                file(ids);
                filed.0.push(p);
            }
        }
        if let Some(ids) = self.by_key.get_mut(&key) {
            file(ids);
            filed.1 = Some(key);
        }
        self.filed.insert(id, filed);
        Ok(())
    }
}

fn push_texts(sql: &mut Sql, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.arg(v);
    }
    sql.push(")");
}

/// Imports customers (and a first contact each). A dry run answers what would happen and writes nothing.
pub async fn import(
    db: &Db,
    scope: &Scope,
    src: ImportSource,
    opts: ImportOptions,
) -> Result<ImportOutcome> {
    let progress = opts.progress.clone().unwrap_or_default();
    let outcome = run_import(db, scope, src, opts, &progress).await;
    progress.finish();
    outcome
}

async fn run_import(
    db: &Db,
    scope: &Scope,
    src: ImportSource,
    opts: ImportOptions,
    progress: &Arc<ImportProgress>,
) -> Result<ImportOutcome> {
    require(scope, "customer.import")?;
    require(scope, "customer.edit")?;
    let started = Instant::now();
    let file_name = src.file_name.clone();
    // parsing a large workbook takes seconds: off the async workers
    let sheet = tokio::task::spawn_blocking(move || read_sheet(&src))
        .await
        .map_err(|e| unreadable(format!("the file could not be read ({e})")))??;
    let read_ms = started.elapsed().as_millis();
    let texts: Vec<Vec<String>> = sheet
        .rows
        .iter()
        .take(20)
        .map(|r| r.iter().map(|c| c.text().unwrap_or_default()).collect())
        .collect();
    let header_at = match &opts.mapping {
        // with a mapping, the header row is the first that holds one of its headers
        Some(m) => texts.iter().position(|r| r.iter().any(|c| m.contains_key(c.trim()))),
        None => rules::find_header_row(&texts),
    }
    .ok_or_else(|| unreadable("no header row was found in the first 20 rows (e.g. 客户名称, 联系人, 手机); send a mapping or add headers"))?;
    let data_rows = sheet.rows.len().saturating_sub(header_at + 1);
    if data_rows > MAX_IMPORT_ROWS {
        return Err(Invalid::new(
            "file",
            "too_many_rows",
            format!(
                "the sheet has {data_rows} rows; at most {MAX_IMPORT_ROWS} are imported at once"
            ),
        )
        .into());
    }
    progress.rows_total.store(data_rows, Ordering::Relaxed);
    progress.enter(ImportPhase::Checking);
    let file = ReadFile {
        name: file_name,
        header: texts[header_at].clone(),
        sheet,
        header_at,
        data_rows,
    };
    let mut tx = db.begin().await?;
    // every row goes into several indexes
    enlarge_page_cache(&mut tx, db.backend).await?;
    let imported = import_rows(&mut tx, db.backend, scope, file, &opts, progress).await;
    restore_page_cache(&mut tx, db.backend).await?;
    let (out, checked_at) = imported?;
    let committing = Instant::now();
    match out.import_id {
        None => tx.rollback().await?,
        Some(_) => tx.commit().await?,
    }
    let commit_ms = committing.elapsed().as_millis();
    let checked_ms = (checked_at - started).as_millis();
    tracing::info!(
        rows = out.rows,
        created = out.created,
        read_ms,
        checked_ms = checked_ms - read_ms,
        written_ms = started.elapsed().as_millis() - checked_ms,
        commit_ms,
        dry_run = opts.dry_run,
        "customer import"
    );
    Ok(out)
}

/// A file as read, before any database work.
struct ReadFile {
    name: String,
    sheet: Sheet,
    /// The index in `sheet.rows` of the header row.
    header_at: usize,
    /// The header row's texts.
    header: Vec<String>,
    data_rows: usize,
}

/// Checks the rows of a file, looks them up among the customers on file and writes them, in the
/// caller's transaction; answers the outcome and when the checks ended.
async fn import_rows(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    scope: &Scope,
    file: ReadFile,
    opts: &ImportOptions,
    progress: &Arc<ImportProgress>,
) -> Result<(ImportOutcome, Instant)> {
    let ReadFile {
        name,
        sheet,
        header_at,
        header,
        data_rows,
    } = file;
    let path = match opts.org_id {
        Some(o) => org_within(tx, scope, "customer.import", o).await?,
        None => scope.org_path.clone(),
    };
    let defs = field_defs(&mut **tx, &path).await?;
    let cols = columns(&header, opts.mapping.as_ref(), &defs)?;
    let header_row = sheet.first_row + header_at;
    let mapping = cols.used.clone();
    let ignored_columns = cols.ignored.clone();
    let (prepared, cols, defs) = {
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || {
            let rows = prepare(&sheet, header_at, &cols, &defs, &progress);
            (rows, cols, defs)
        })
        .await
        .map_err(|e| unreadable(format!("the rows could not be checked ({e})")))?
    };
    let mut on_file = if opts.duplicates == DuplicateMode::ImportAnyway {
        None
    } else {
        Some(OnFile::load(tx, scope, backend, &prepared).await?)
    };
    let checked_at = Instant::now();
    progress.enter(ImportPhase::Writing);
    let import_id = if opts.dry_run {
        None
    } else {
        Some(
            Sql::new("INSERT INTO customer_imports (org_id, user_id, file_name, rows_total, created, updated, created_at) VALUES (")
                .arg(path.id()).push(", ").arg(scope.user_id).push(", ").arg(name.chars().take(200).collect::<String>())
                .push(", ").arg(data_rows as i64).push(", 0, 0, ").arg(now_millis()).push(") RETURNING id")
                .fetch_i64(&mut **tx)
                .await?,
        )
    };
    let mut out = ImportOutcome {
        import_id,
        rows: 0,
        accepted: 0,
        created: 0,
        updated: 0,
        rejected: Vec::new(),
        duplicates: Vec::new(),
        header_row,
        mapping,
        ignored_columns,
    };
    // earlier rows of this file, by phone and by name+company
    let mut seen_phone: HashMap<String, usize> = HashMap::new();
    // new customers waiting to be written, a batch at a time
    let mut pending: Vec<(Fields, Option<ContactFields>)> = Vec::new();
    // their tags, search terms and phones, written sorted a few batches at a time
    let mut index_rows = IndexRows::default();
    let batch = Batch {
        backend,
        org_id: path.id(),
        import_id,
    };
    let mut seen_key: HashMap<String, usize> = HashMap::new();
    for (n, row) in prepared.into_iter().enumerate() {
        if n % 1000 == 0 {
            progress.rows_done.store(n, Ordering::Relaxed);
        }
        let (row_no, customer, fields, contact) = match row {
            Prepared::Blank => continue,
            Prepared::Rejected(r) => {
                out.rows += 1;
                out.rejected.push(r);
                continue;
            }
            Prepared::Row(row) => {
                let Checked {
                    row_no,
                    customer,
                    fields,
                    contact,
                } = *row;
                (row_no, customer, fields, contact)
            }
        };
        out.rows += 1;
        let key = rules::name_company_key(&fields.name, fields.company.as_deref());
        let earlier = fields
            .phone
            .as_ref()
            .and_then(|p| seen_phone.get(&p.digits).copied())
            .or_else(|| seen_key.get(&key).copied());
        if let (Some(first), false) = (earlier, opts.duplicates == DuplicateMode::ImportAnyway) {
            out.duplicates.push(ImportDuplicate {
                row: row_no,
                customer_id: None,
                reason: "same_as_row".into(),
                action: "skipped".into(),
                same_as_row: Some(first),
            });
            continue;
        }
        if let Some(p) = &fields.phone {
            seen_phone.entry(p.digits.clone()).or_insert(row_no);
        }
        // a contact's numbers too: rows waiting in the batch are not in the phone index yet
        for p in contact
            .iter()
            .flat_map(|c| c.phone.iter().chain(c.mobile.iter()))
        {
            if let Ok(p) = Phone::parse("phone", p) {
                seen_phone.entry(p.digits).or_insert(row_no);
            }
        }
        let repeats = on_file.as_ref().and_then(|o| o.duplicate_of(&fields, &key));
        seen_key.entry(key).or_insert(row_no);
        if let Some((reason, target)) = repeats {
            let (action, customer_id) = match (opts.duplicates, target) {
                (DuplicateMode::Update, Some(id)) => {
                    match update_from_row(tx, scope, id, &customer, &defs, import_id).await {
                        Ok(()) => {
                            if let Some(o) = on_file.as_mut() {
                                o.refile(tx, id).await?;
                            }
                            out.updated += 1;
                            out.accepted += 1;
                            ("updated", Some(id))
                        }
                        Err(StoreError::Invalid(e)) => {
                            out.rejected.push(ImportRejection {
                                row: row_no,
                                column: column_of(&cols, &e.field),
                                field: Some(e.field.clone()),
                                reason: e.message,
                            });
                            continue;
                        }
                        Err(StoreError::NotFound | StoreError::Forbidden(_)) => {
                            ("skipped", Some(id))
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ => ("skipped", target),
            };
            out.duplicates.push(ImportDuplicate {
                row: row_no,
                customer_id,
                reason: reason.into(),
                action: action.into(),
                same_as_row: None,
            });
            continue;
        }
        pending.push((fields, contact));
        if pending.len() >= BATCH_ROWS {
            insert_batch(tx, scope, &batch, &pending, &mut index_rows).await?;
            pending.clear();
            if index_rows.terms.len() >= INDEX_ROWS_AT_ONCE {
                index_rows.write(tx).await?;
            }
        }
        out.created += 1;
        out.accepted += 1;
    }
    insert_batch(tx, scope, &batch, &pending, &mut index_rows).await?;
    index_rows.write(tx).await?;
    if let Some(id) = import_id {
        Sql::new("UPDATE customer_imports SET created = ")
            .arg(out.created as i64)
            .push(", updated = ")
            .arg(out.updated as i64)
            .push(" WHERE id = ")
            .arg(id)
            .execute(&mut **tx)
            .await?;
        let mut changes = Changes::new();
        changes
            .set("rows", &out.rows)
            .set("created", &out.created)
            .set("updated", &out.updated)
            .set("rejected", &out.rejected.len());
        audit::record(
            &mut **tx,
            scope.into(),
            Entry {
                org_path: path.as_str(),
                action: "import",
                entity: "customer_import",
                entity_id: Some(id),
                summary: name,
                changes: Some(changes),
            },
        )
        .await?;
    }
    Ok((out, checked_at))
}

/// New customers are written this many to a statement (about 40 parameters each).
const BATCH_ROWS: usize = 200;

/// What the new customers of one import share.
struct Batch {
    backend: Backend,
    org_id: i64,
    import_id: Option<i64>,
}

/// How many search terms of new customers are gathered (with the same customers' tags and phones)
/// before they are written. Each term is a random key in a large index: written sorted, many at a
/// time, they land on pages the statement before has just read.
const INDEX_ROWS_AT_ONCE: usize = 100_000;

/// The index rows of new customers, waiting to be written: (value, customer id).
#[derive(Default)]
struct IndexRows {
    tags: Vec<(String, i64)>,
    terms: Vec<(String, i64)>,
    phones: Vec<(String, i64)>,
}

impl IndexRows {
    /// Writes the rows waiting, in index order, and empties the lists.
    async fn write(&mut self, tx: &mut Transaction<'static, Any>) -> Result<()> {
        for (into, values, parted) in [
            ("customer_tags (tag, customer_id)", &mut self.tags, false),
            (
                "customer_terms (term, customer_id, part)",
                &mut self.terms,
                true,
            ),
            (
                "customer_phones (digits, customer_id)",
                &mut self.phones,
                false,
            ),
        ] {
            if parted {
                values.sort_unstable_by(|a, b| {
                    (rules::term_part(a.1), &a.0, a.1).cmp(&(rules::term_part(b.1), &b.0, b.1))
                });
            } else {
                values.sort_unstable();
            }
            // values written into the text (terms, tags and phones come from validated text);
            // the next statement is written while the database runs this one
            let mut statements = values.chunks(2000).map(|chunk| {
                let mut text = format!("INSERT INTO {into} VALUES ");
                for (i, (v, id)) in chunk.iter().enumerate() {
                    if i > 0 {
                        text.push_str(", ");
                    }
                    text.push('(');
                    push_quoted(&mut text, v);
                    text.push_str(", ");
                    text.push_str(&id.to_string());
                    if parted {
                        text.push_str(", ");
                        text.push_str(&rules::term_part(*id).to_string());
                    }
                    text.push(')');
                }
                Sql::literal(&text)
            });
            let mut next = statements.next();
            while let Some(sql) = next {
                let (done, following) =
                    tokio::join!(sql.execute(&mut **tx), async { statements.next() });
                done?;
                next = following;
            }
            values.clear();
        }
        Ok(())
    }
}

/// Writes new customers of an import (owned by the importer) with multi-row statements: the
/// customers, their contacts and a timeline line each; their tags, search terms and phones go to
/// `index_rows`, for the caller to write. The search text is worked out here rather than read back.
async fn insert_batch(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    batch: &Batch,
    rows: &[(Fields, Option<ContactFields>)],
    index_rows: &mut IndexRows,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let now = now_millis();
    let indexed: Vec<(String, Vec<String>, Vec<String>)> = rows
        .iter()
        .map(|(f, contact)| {
            let mut src = rules::SearchSource::default();
            src.names.push(&f.name);
            src.names.extend(f.company.as_deref());
            src.names.extend(f.code.as_deref());
            src.names.extend(contact.as_ref().map(|c| c.name.as_str()));
            let mut phones: Vec<String> = f
                .phone
                .iter()
                .map(|p| p.text.clone())
                .chain(
                    contact
                        .iter()
                        .flat_map(|c| c.phone.iter().chain(c.mobile.iter()).cloned()),
                )
                .filter_map(|p| Phone::parse("phone", &p).ok().map(|p| p.digits))
                .collect();
            phones.sort();
            phones.dedup();
            src.phones = phones.iter().map(String::as_str).collect();
            (rules::search_text(&src), rules::search_terms(&src), phones)
        })
        .collect();
    let mut sql = Sql::bulk(batch.backend, "INSERT INTO customers (org_id, owner_id, pool_since, name_company_key, search_text, last_touched_at, import_id, created_by, created_at, updated_at, ");
    sql.push(FIELD_COLUMNS).push(") VALUES ");
    for (i, ((f, _), (search_text, _, _))) in rows.iter().zip(&indexed).enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(")
            .arg(batch.org_id)
            .push(", ")
            .arg(scope.user_id)
            .push(", NULL, ")
            .arg(rules::name_company_key(&f.name, f.company.as_deref()))
            .push(", ")
            .arg(search_text)
            .push(", ")
            .arg(now)
            .push(", ")
            .arg(batch.import_id)
            .push(", ")
            .arg(scope.user_id)
            .push(", ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(", ");
        push_field_values(&mut sql, f, None);
        sql.push(")");
    }
    sql.push(" RETURNING id");
    let mut ids: Vec<(i64,)> = sql.fetch_all(&mut **tx).await?;
    // ids are drawn in the order of the rows; RETURNING need not answer in that order
    ids.sort_unstable();
    let ids: Vec<i64> = ids.into_iter().map(|(id,)| id).collect();
    if ids.len() != rows.len() {
        return Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "{} customers written, {} ids returned",
            rows.len(),
            ids.len()
        ))));
    }
    let contacts: Vec<(i64, &ContactFields)> = ids
        .iter()
        .zip(rows)
        .filter_map(|(&id, (_, c))| c.as_ref().map(|c| (id, c)))
        .collect();
    if !contacts.is_empty() {
        let mut sql = Sql::bulk(
            batch.backend,
            &format!("INSERT INTO contacts (customer_id, created_at, updated_at, {CONTACT_COLUMNS}) VALUES "),
        );
        for (i, (id, c)) in contacts.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .arg(*id)
                .push(", ")
                .arg(now)
                .push(", ")
                .arg(now)
                .push(", ");
            contact_values(&mut sql, c);
            sql.push(")");
        }
        sql.execute(&mut **tx).await?;
    }
    for ((&id, (f, _)), (_, terms, phones)) in ids.iter().zip(rows).zip(indexed) {
        index_rows
            .tags
            .extend(f.tags.iter().map(|t| (t.clone(), id)));
        index_rows.terms.extend(terms.into_iter().map(|t| (t, id)));
        index_rows
            .phones
            .extend(phones.into_iter().map(|p| (p, id)));
    }
    let mut sql = Sql::bulk(
        batch.backend,
        "INSERT INTO customer_events (customer_id, at, user_id, username, action, summary) VALUES ",
    );
    for (i, (id, (f, _))) in ids.iter().zip(rows).enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(")
            .arg(*id)
            .push(", ")
            .arg(now)
            .push(", ")
            .arg(scope.user_id)
            .push(", ")
            .arg(&scope.username)
            .push(", 'import', ")
            .arg(&f.name)
            .push(")");
    }
    sql.execute(&mut **tx).await?;
    Ok(())
}

/// A timeline line without an audit entry of its own (the import has one for all its rows).
async fn timeline_only(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    customer_id: i64,
    action: &str,
    summary: &str,
) -> Result<()> {
    Sql::new("INSERT INTO customer_events (customer_id, at, user_id, username, action, summary) VALUES (")
        .arg(customer_id).push(", ").arg(now_millis()).push(", ").arg(scope.user_id).push(", ").arg(&scope.username)
        .push(", ").arg(action).push(", ").arg(summary).push(")")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Lays a row's non-empty cells over a customer on file, keeping what it held for undo.
async fn update_from_row(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    id: i64,
    row: &CustomerInput,
    defs: &[FieldDef],
    import_id: Option<i64>,
) -> Result<()> {
    let before = super::editable(tx, scope, id).await?;
    let mut patch = row.clone();
    // a spreadsheet does not say whether it means a company; keep what is on file
    patch.is_company = None;
    let input = before.as_input().overlay(patch);
    let after = check(&input, defs)?;
    write_fields(
        tx,
        id,
        &after,
        (before.intent == after.intent.map(|i| i.code().to_string()))
            .then(|| before.expected_close_by.clone()),
    )
    .await?;
    if let Some(import_id) = import_id {
        let snapshot = serde_json::json!({"input": input_json(&before.as_input()), "expected_close_by": before.expected_close_by});
        Sql::new("INSERT INTO customer_import_updates (import_id, customer_id, before) VALUES (")
            .arg(import_id)
            .push(", ")
            .arg(id)
            .push(", ")
            .arg(snapshot.to_string())
            .push(") ON CONFLICT DO NOTHING")
            .execute(&mut **tx)
            .await?;
    }
    let changes = super::field_changes(&before.as_input(), &input);
    event(
        tx,
        scope,
        id,
        &before.org_path,
        "import_update",
        after.name.clone(),
        Some(changes),
    )
    .await
}

async fn write_fields(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    f: &Fields,
    kept_close_by: Option<Option<String>>,
) -> Result<()> {
    let mut sql = Sql::new("UPDATE customers SET (");
    sql.push(FIELD_COLUMNS).push(") = (");
    push_field_values(&mut sql, f, kept_close_by);
    sql.push("), name_company_key = ")
        .arg(rules::name_company_key(&f.name, f.company.as_deref()))
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id);
    sql.execute(&mut **tx).await?;
    set_tags(tx, id, &f.tags).await?;
    reindex(tx, id).await
}

fn input_json(i: &CustomerInput) -> Value {
    serde_json::json!({
        "kind": i.kind, "is_company": i.is_company, "name": i.name, "company": i.company, "code": i.code,
        "phone": i.phone, "email": i.email, "address": i.address, "region": i.region, "industry": i.industry,
        "source": i.source, "customer_group": i.customer_group, "tags": i.tags, "importance": i.importance,
        "intent": i.intent, "hobbies": i.hobbies, "birthday": i.birthday, "birthday_reminder": i.birthday_reminder,
        "notes": i.notes, "blacklisted": i.blacklisted, "blacklist_reason": i.blacklist_reason, "custom": i.custom,
    })
}

/// Undoes an import: the customers it created are removed (with anything added to them since),
/// the ones it updated get their former values back. Answers (removed, restored).
pub async fn undo_import(db: &Db, scope: &Scope, import_id: i64) -> Result<(usize, usize)> {
    require(scope, "customer.import")?;
    let mut tx = db.begin().await?;
    let mut sql = Sql::new("SELECT i.undone_at, o.path FROM customer_imports i JOIN orgs o ON o.id = i.org_id WHERE i.id = ");
    sql.arg(import_id)
        .push(" AND ")
        .reach("o.path", &scope.reach("customer.import"));
    let (undone_at, path): (Option<i64>, String) = sql.fetch_one(&mut *tx).await?;
    if undone_at.is_some() {
        return Err(StoreError::conflict(
            "id",
            "already_undone",
            "this import has been undone already",
        ));
    }
    let created: Vec<(i64,)> = Sql::new("SELECT id FROM customers WHERE import_id = ")
        .arg(import_id)
        .fetch_all(&mut *tx)
        .await?;
    let ids: Vec<i64> = created.into_iter().map(|(id,)| id).collect();
    delete_terms(&mut tx, &ids).await?;
    for chunk in ids.chunks(500) {
        Sql::new("UPDATE calls SET customer_id = NULL WHERE ")
            .in_ids("customer_id", chunk)
            .execute(&mut *tx)
            .await?;
        for table in [
            "activities",
            "contacts",
            "customer_attachments",
            "customer_events",
            "customer_shares",
            "customer_phones",
            "customer_tags",
            "customer_import_updates",
        ] {
            Sql::new(&format!("DELETE FROM {table} WHERE "))
                .in_ids("customer_id", chunk)
                .execute(&mut *tx)
                .await?;
        }
        Sql::new("DELETE FROM customers WHERE ")
            .in_ids("id", chunk)
            .execute(&mut *tx)
            .await?;
    }
    let updated: Vec<(i64, String)> =
        Sql::new("SELECT customer_id, before FROM customer_import_updates WHERE import_id = ")
            .arg(import_id)
            .fetch_all(&mut *tx)
            .await?;
    for (id, before) in &updated {
        let snapshot: Value = serde_json::from_str(before).unwrap_or_default();
        let input: CustomerInput =
            serde_json::from_value(snapshot["input"].clone()).unwrap_or_default();
        let (org_path,): (String,) =
            Sql::new("SELECT o.path FROM customers c JOIN orgs o ON o.id = c.org_id WHERE c.id = ")
                .arg(*id)
                .fetch_one(&mut *tx)
                .await?;
        let defs = field_defs(
            &mut *tx,
            &OrgPath::parse(&org_path).expect("stored org paths are well formed"),
        )
        .await?;
        // the values were valid when kept; a custom field added since may be required now
        let f = check(&input, &defs).or_else(|_| {
            check(
                &CustomerInput {
                    custom: None,
                    ..input.clone()
                },
                &[],
            )
        })?;
        let close_by = snapshot["expected_close_by"].as_str().map(str::to_string);
        write_fields(&mut tx, *id, &f, Some(close_by)).await?;
        timeline_only(&mut tx, scope, *id, "import_undone", &f.name).await?;
    }
    Sql::new("DELETE FROM customer_import_updates WHERE import_id = ")
        .arg(import_id)
        .execute(&mut *tx)
        .await?;
    Sql::new("UPDATE customer_imports SET undone_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(import_id)
        .execute(&mut *tx)
        .await?;
    let mut changes = Changes::new();
    changes
        .set("removed", &ids.len())
        .set("restored", &updated.len());
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "undo",
            entity: "customer_import",
            entity_id: Some(import_id),
            summary: String::new(),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((ids.len(), updated.len()))
}

// ---------------------------------------------------------------- export

/// The export's columns: headers an import recognises, so that an export imports back as it was.
const EXPORT_HEADERS: &[(&str, &str)] = &[
    ("客户名称", "name"),
    ("公司名称", "company"),
    ("客户类型", "kind"),
    ("联系电话", "phone"),
    ("电子邮箱", "email"),
    ("地址", "address"),
    ("地区", "region"),
    ("所属行业", "industry"),
    ("客户来源", "source"),
    ("客户组", "customer_group"),
    ("标签", "tags"),
    ("重要程度", "importance"),
    ("意向等级", "intent"),
    ("生日", "birthday"),
    ("爱好", "hobbies"),
    ("备注", "notes"),
    ("客户编号", "code"),
    ("联系人", "contact_name"),
    ("职务", "contact_title"),
    ("部门", "contact_department"),
];

/// Writes every customer of the filtered list the caller may see to an xlsx workbook (phones
/// masked as the caller sees them) and logs the export. Answers the file and the row count.
pub async fn export_xlsx(
    db: &Db,
    scope: &Scope,
    filter: &CustomerFilter,
) -> Result<(Vec<u8>, usize)> {
    require(scope, "customer.export")?;
    let defs = field_defs(&db.pool, &scope.org_path).await?;
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let xlsx = |e: rust_xlsxwriter::XlsxError| {
        StoreError::Database(sqlx::Error::Protocol(format!("xlsx: {e}")))
    };
    let headers: Vec<String> = EXPORT_HEADERS
        .iter()
        .map(|(h, _)| h.to_string())
        .chain(defs.iter().map(|d| d.label.clone()))
        .collect();
    for (c, h) in headers.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, h, &bold)
            .map_err(xlsx)?;
    }
    let mut row: u32 = 1;
    let mut cursor: Option<String> = None;
    loop {
        let page = super::list(db, scope, filter, 500, cursor.as_deref()).await?;
        let ids: Vec<i64> = page.items.iter().map(|c| c.id).collect();
        let mut first_contact: HashMap<i64, (String, Option<String>, Option<String>)> =
            HashMap::new();
        if !ids.is_empty() {
            let mut sql =
                Sql::new("SELECT customer_id, name, title, department FROM contacts WHERE ");
            sql.in_ids("customer_id", &ids).push(" ORDER BY id");
            let contacts: Vec<(i64, String, Option<String>, Option<String>)> =
                sql.fetch_all(&db.pool).await?;
            for (cid, n, t, d) in contacts {
                first_contact.entry(cid).or_insert((n, t, d));
            }
        }
        for c in &page.items {
            let contact = first_contact.get(&c.id);
            let value = |field: &str| -> Option<String> {
                match field {
                    "name" => Some(c.name.clone()),
                    "company" => c.company.clone(),
                    "kind" => CustomerKind::parse(&c.kind).map(|k| k.name_zh().to_string()),
                    "phone" => c.phone.clone(),
                    "email" => c.email.clone(),
                    "address" => c.address.clone(),
                    "region" => c.region.clone(),
                    "industry" => c.industry.clone(),
                    "source" => c.source.clone(),
                    "customer_group" => c.customer_group.clone(),
                    "tags" => Some(c.tags.join("，")).filter(|t| !t.is_empty()),
                    "importance" => c
                        .importance
                        .as_deref()
                        .and_then(Importance::parse)
                        .map(|i| i.name_zh().to_string()),
                    "intent" => c.intent.clone(),
                    "birthday" => c.birthday.clone(),
                    "hobbies" => c.hobbies.clone(),
                    "notes" => c.notes.clone(),
                    "code" => c.code.clone(),
                    "contact_name" => contact.map(|k| k.0.clone()),
                    "contact_title" => contact.and_then(|k| k.1.clone()),
                    "contact_department" => contact.and_then(|k| k.2.clone()),
                    _ => None,
                }
            };
            for (col, (_, field)) in EXPORT_HEADERS.iter().enumerate() {
                if let Some(v) = value(field) {
                    sheet.write_string(row, col as u16, v).map_err(xlsx)?;
                }
            }
            for (j, d) in defs.iter().enumerate() {
                let col = (EXPORT_HEADERS.len() + j) as u16;
                match c.custom.get(&d.code) {
                    Some(Value::Number(n)) => {
                        sheet
                            .write_number(row, col, n.as_f64().unwrap_or_default())
                            .map_err(xlsx)?;
                    }
                    Some(Value::String(s)) => {
                        sheet.write_string(row, col, s).map_err(xlsx)?;
                    }
                    _ => {}
                }
            }
            row += 1;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let bytes = book.save_to_buffer().map_err(xlsx)?;
    let count = (row - 1) as usize;
    let mut tx = db.begin().await?;
    let mut changes = Changes::new();
    changes
        .set("rows", &count)
        .set("filter", &format!("{filter:?}"));
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: scope.org_path.as_str(),
            action: "export",
            entity: "customer",
            entity_id: None,
            summary: format!("{count} customers"),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((bytes, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_gbk() {
        let rows = parse_csv("a,\"b,c\",\"say \"\"hi\"\"\"\r\n1,2,3\n");
        assert_eq!(
            rows,
            vec![vec!["a", "b,c", "say \"hi\""], vec!["1", "2", "3"]]
        );
        let (gbk, _, _) = encoding_rs::GBK.encode("客户名称,手机\n张三,13800138000\n");
        let sheet = read_csv(&gbk).unwrap();
        assert_eq!(sheet.rows[1][0], Cell::Text("张三".into()));
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(27), "AB");
        assert_eq!(
            Cell::Number(13800138000.0).text().as_deref(),
            Some("13800138000")
        );
        assert_eq!(Cell::Date(45658.0).text().as_deref(), Some("2025-01-01"));
    }
}
