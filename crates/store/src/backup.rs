//! Backups (数据备份) in two forms, and their verification by restoring them.
//!
//! **SQLite snapshot** (the default on SQLite): `VACUUM INTO` a new file — a consistent copy taken
//! while the server keeps running — plus a table `backup_manifest` holding one JSON document:
//! format, keping version, schema migrations, row counts per table and the SHA-256 of the content
//! (every table's rows in primary-key order, encoded as in an export). The file is an ordinary
//! SQLite database: put it in place of `keping.db` to restore.
//!
//! **Export** (the default on PostgreSQL, `--format export` on SQLite): a portable dump that restores
//! into either database. A gzip stream of UTF-8 JSON lines, written inside one REPEATABLE READ, READ
//! ONLY transaction (one snapshot of the whole database):
//! 1. header: `{"format":"keping-backup","format_version":1,"kind":"export","keping_version",
//!    "source":"postgres"|"sqlite","schema_versions":[1,2,…],"created_at",
//!    "tables":[{"name","columns":[{"name","kind":"int"|"real"|"text"|"blob"}…],"rows"}…]}`;
//!    tables come parents first (foreign keys), so they load in file order;
//! 2. per table a line `{"table":"<name>"}`, then one JSON array per row in the header's column
//!    order (ints and reals as numbers, text as strings, blobs as base64 strings, null as null),
//!    in primary-key order;
//! 3. trailer: `{"end":true,"rows":<total>,"sha256":"<hex>"}`, the SHA-256 of every byte before the
//!    trailer line (header included). A file without it was cut short.
//!
//! `verify` restores a backup into a scratch database (a temporary SQLite file, or a scratch
//! PostgreSQL database) and checks it; nothing else is ever written. `restore` loads an export into
//! an empty database, all in one transaction.

use crate::db::Arg;
use crate::{Backend, Db, Sql, StoreError};
use base64::Engine;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "keping-backup";
pub const FORMAT_VERSION: i64 = 1;
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// Tables that are not data: the schema version goes in the header, the manifest is the header.
const NOT_DATA: &[&str] = &["schema_migrations", "backup_manifest"];
/// Tables whose rows the migrations install (the built-in scoring templates), children first: an
/// empty database has them too.
const SEEDED: &[&str] = &["scoring_model_versions", "scoring_models"];
/// Bound values per INSERT statement while loading.
const PARAMS_PER_INSERT: usize = 900;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    NotABackup(String),
    #[error("the backup is damaged: {0}")]
    Corrupt(String),
    #[error("the backup is cut short (truncated): {0}")]
    Truncated(String),
    #[error("the backup has schema version {found}, newer than this keping knows ({known}); restore it with a newer keping")]
    NewerSchema { found: i64, known: i64 },
    /// Refused to protect existing data (a file that exists, a database that is not empty).
    #[error("{0}")]
    Refused(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        BackupError::Store(e.into())
    }
}

type Result<T, E = BackupError> = std::result::Result<T, E>;

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> BackupError {
    move |e| BackupError::Io(what.to_string(), e)
}

// ---------------------------------------------------------------- the catalogue

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Int,
    Real,
    Text,
    Blob,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    /// PostgreSQL's type, for casts when writing (empty on SQLite).
    #[serde(skip)]
    pg_type: String,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<Column>,
    pk: Vec<String>,
    /// Tables this one refers to (not itself).
    parents: Vec<String>,
    /// Columns referring to this same table (a parent org, a manager): loaded in a second pass.
    self_refs: Vec<String>,
}

fn sqlite_kind(table: &str, column: &str, declared: &str) -> Result<Kind> {
    let t = declared.to_ascii_uppercase();
    Ok(if t.contains("INT") {
        Kind::Int
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Kind::Text
    } else if t.contains("BLOB") || t.is_empty() {
        Kind::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Kind::Real
    } else {
        return Err(unsupported(table, column, declared));
    })
}

fn pg_kind(table: &str, column: &str, declared: &str) -> Result<Kind> {
    Ok(match declared {
        "bigint" | "integer" | "smallint" => Kind::Int,
        "text" | "json" | "jsonb" => Kind::Text,
        t if t.starts_with("character varying") => Kind::Text,
        "bytea" => Kind::Blob,
        "double precision" | "real" => Kind::Real,
        _ => return Err(unsupported(table, column, declared)),
    })
}

fn unsupported(table: &str, column: &str, declared: &str) -> BackupError {
    BackupError::Refused(format!(
        "column {table}.{column} has the type '{declared}', which backups do not carry yet"
    ))
}

/// A column as the catalogue lists it: name, declared type, position in the primary key (0: none).
type ColumnRow = (String, String, i64);

/// Every data table with its columns and keys, parents before children.
async fn catalog(conn: &mut AnyConnection, backend: Backend) -> Result<Vec<Table>> {
    let names: Vec<(String,)> = match backend {
        Backend::Sqlite => sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        ),
        Backend::Postgres => sqlx::query_as(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = current_schema() ORDER BY 1",
        ),
    }
    .fetch_all(&mut *conn)
    .await?;
    let mut tables = Vec::new();
    for (name,) in names {
        if NOT_DATA.contains(&name.as_str()) {
            continue;
        }
        let (cols, fks): (Vec<ColumnRow>, Vec<(String, String)>) = match backend {
            Backend::Sqlite => (
                sqlx::query_as("SELECT name, type, pk FROM pragma_table_info($1) ORDER BY cid")
                    .bind(&name)
                    .fetch_all(&mut *conn)
                    .await?,
                sqlx::query_as("SELECT \"from\", \"table\" FROM pragma_foreign_key_list($1)")
                    .bind(&name)
                    .fetch_all(&mut *conn)
                    .await?,
            ),
            Backend::Postgres => (
                sqlx::query_as(
                    "SELECT a.attname::text, format_type(a.atttypid, NULL)::text, \
                     COALESCE((SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary), 0)::int8 \
                     FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                )
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?,
                sqlx::query_as(
                    "SELECT a.attname::text, c.confrelid::regclass::text FROM pg_constraint c \
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
                     WHERE c.contype = 'f' AND c.conrelid = $1::regclass",
                )
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?,
            ),
        };
        let mut columns = Vec::new();
        let mut pk: Vec<(i64, String)> = Vec::new();
        for (col, declared, pk_pos) in cols {
            let kind = match backend {
                Backend::Sqlite => sqlite_kind(&name, &col, &declared)?,
                Backend::Postgres => pg_kind(&name, &col, &declared)?,
            };
            if pk_pos > 0 {
                pk.push((pk_pos, col.clone()));
            }
            columns.push(Column {
                name: col,
                kind,
                pg_type: if backend == Backend::Postgres {
                    declared
                } else {
                    String::new()
                },
            });
        }
        pk.sort();
        let mut parents: Vec<String> = fks
            .iter()
            .filter(|(_, t)| *t != name)
            .map(|(_, t)| t.clone())
            .collect();
        parents.sort();
        parents.dedup();
        let self_refs = fks
            .iter()
            .filter(|(_, t)| *t == name)
            .map(|(c, _)| c.clone())
            .collect();
        tables.push(Table {
            name,
            columns,
            pk: pk.into_iter().map(|(_, c)| c).collect(),
            parents,
            self_refs,
        });
    }
    order(tables)
}

/// Parents first, otherwise by name, so that a backup loads in file order whatever the foreign keys.
fn order(mut left: Vec<Table>) -> Result<Vec<Table>> {
    let mut out: Vec<Table> = Vec::new();
    while !left.is_empty() {
        let ready = left.iter().position(|t| {
            t.parents
                .iter()
                .all(|p| out.iter().any(|o| &o.name == p) || !left.iter().any(|l| &l.name == p))
        });
        match ready {
            Some(i) => out.push(left.remove(i)),
            None => {
                return Err(BackupError::Refused(format!(
                    "the tables {} refer to one another in a cycle; backups cannot order them",
                    left.iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
    }
    Ok(out)
}

async fn schema_versions(conn: &mut AnyConnection) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}

async fn row_count(conn: &mut AnyConnection, table: &str) -> Result<i64> {
    Ok(sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&mut *conn)
        .await?
        .try_get::<i64, _>(0)?)
}

// ---------------------------------------------------------------- writing rows

/// Writes every table's section (`{"table":…}` then its rows) to `sink`; answers rows per table.
async fn write_tables(
    conn: &mut AnyConnection,
    backend: Backend,
    tables: &[Table],
    sink: &mut impl FnMut(&[u8]) -> Result<()>,
) -> Result<Vec<i64>> {
    let mut counts = Vec::new();
    for t in tables {
        sink(format!("{}\n", json!({ "table": t.name })).as_bytes())?;
        let select: Vec<String> = t
            .columns
            .iter()
            .map(|c| match (backend, c.kind) {
                (Backend::Postgres, Kind::Int) => format!("{}::int8", c.name),
                (Backend::Postgres, Kind::Real) => format!("{}::float8", c.name),
                (Backend::Postgres, Kind::Text) => format!("{}::text", c.name),
                _ => c.name.clone(),
            })
            .collect();
        let mut text = format!("SELECT {} FROM {}", select.join(", "), t.name);
        if !t.pk.is_empty() {
            text.push_str(&format!(" ORDER BY {}", t.pk.join(", ")));
        }
        let mut rows = sqlx::query(&text).fetch(&mut *conn);
        let mut n = 0;
        while let Some(row) = rows.try_next().await? {
            let mut values = Vec::with_capacity(t.columns.len());
            for (i, c) in t.columns.iter().enumerate() {
                values.push(match c.kind {
                    Kind::Int => row
                        .try_get::<Option<i64>, _>(i)?
                        .map_or(Value::Null, Value::from),
                    Kind::Real => row
                        .try_get::<Option<f64>, _>(i)?
                        .map_or(Value::Null, Value::from),
                    Kind::Text => row
                        .try_get::<Option<String>, _>(i)?
                        .map_or(Value::Null, Value::from),
                    Kind::Blob => row
                        .try_get::<Option<Vec<u8>>, _>(i)?
                        .map_or(Value::Null, |b| {
                            Value::from(base64::engine::general_purpose::STANDARD.encode(b))
                        }),
                });
            }
            let mut line = serde_json::to_vec(&values).expect("values serialise");
            line.push(b'\n');
            sink(&line)?;
            n += 1;
        }
        counts.push(n);
    }
    Ok(counts)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TableHeader {
    name: String,
    #[serde(default)]
    columns: Vec<Column>,
    rows: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    format: String,
    format_version: i64,
    kind: String,
    keping_version: String,
    source: String,
    schema_versions: Vec<i64>,
    created_at: String,
    tables: Vec<TableHeader>,
    /// Snapshots only: the content's SHA-256 (an export carries it in its trailer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

/// What was written or found: for the command line and the download's log.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// sqlite_snapshot or export
    pub kind: String,
    pub source: String,
    pub keping_version: String,
    pub schema_versions: Vec<i64>,
    pub created_at: String,
    pub tables: Vec<(String, i64)>,
    /// For verify: what was checked.
    pub checks: Vec<String>,
}

impl Summary {
    fn of(h: &Header) -> Summary {
        Summary {
            kind: h.kind.clone(),
            source: h.source.clone(),
            keping_version: h.keping_version.clone(),
            schema_versions: h.schema_versions.clone(),
            created_at: h.created_at.clone(),
            tables: h.tables.iter().map(|t| (t.name.clone(), t.rows)).collect(),
            checks: Vec::new(),
        }
    }

    pub fn rows(&self) -> i64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} of a {} database by keping {}, made {}, schema {}",
            self.kind.replace('_', " "),
            self.source,
            self.keping_version,
            self.created_at,
            self.schema_versions.last().copied().unwrap_or(0)
        )?;
        for (t, n) in &self.tables {
            writeln!(f, "  {t:<24} {n:>10} rows")?;
        }
        write!(f, "  {:<24} {:>10} rows", "total", self.rows())?;
        for c in &self.checks {
            write!(f, "\n  ok: {c}")?;
        }
        Ok(())
    }
}

/// A file written under a temporary name and put in place only when complete: an existing file is
/// never overwritten, and a failed backup leaves nothing behind.
struct NewFile {
    partial: PathBuf,
    target: PathBuf,
}

impl NewFile {
    fn new(target: &Path) -> Result<NewFile> {
        if target.exists() {
            return Err(BackupError::Refused(format!(
                "{} exists already; a backup never overwrites a file, choose another name",
                target.display()
            )));
        }
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".partial-{}", std::process::id()));
        let partial = target.with_file_name(name);
        let _ = std::fs::remove_file(&partial);
        Ok(NewFile {
            partial,
            target: target.to_path_buf(),
        })
    }

    /// Puts the file in place; a hard link fails rather than replace a file made meanwhile.
    fn finish(self) -> Result<()> {
        std::fs::hard_link(&self.partial, &self.target)
            .map_err(io(format!("cannot create {}", self.target.display())))?;
        Ok(())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.partial);
    }
}

fn now_text() -> String {
    keping_domain::rfc3339(keping_domain::now_millis())
}

/// The backup this database makes by default: a snapshot on SQLite, an export on PostgreSQL.
pub async fn create(db: &Db, out: &Path, keping_version: &str) -> Result<Summary> {
    match db.backend {
        Backend::Sqlite => snapshot(db, out, keping_version).await,
        Backend::Postgres => export(db, out, keping_version).await,
    }
}

/// An export (see the module's documentation) to a new file `out`.
pub async fn export(db: &Db, out: &Path, keping_version: &str) -> Result<Summary> {
    let file = NewFile::new(out)?;
    let mut tx = match db.backend {
        Backend::Postgres => {
            db.pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?
        }
        // a read transaction in WAL mode sees one snapshot from its first read on
        Backend::Sqlite => db.pool.begin().await?,
    };
    let tables = catalog(&mut tx, db.backend).await?;
    let mut header = Header {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        kind: "export".into(),
        keping_version: keping_version.into(),
        source: db.backend.name().into(),
        schema_versions: schema_versions(&mut tx).await?,
        created_at: now_text(),
        tables: Vec::new(),
        sha256: None,
    };
    for t in &tables {
        header.tables.push(TableHeader {
            name: t.name.clone(),
            columns: t.columns.clone(),
            rows: row_count(&mut tx, &t.name).await?,
        });
    }
    let f = std::fs::File::create(&file.partial)
        .map_err(io(format!("cannot create {}", file.partial.display())))?;
    let mut gz = GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::default());
    let mut hash = Sha256::new();
    let mut sink = |bytes: &[u8]| -> Result<()> {
        hash.update(bytes);
        gz.write_all(bytes).map_err(io("cannot write the backup"))
    };
    sink(
        format!(
            "{}\n",
            serde_json::to_string(&header).expect("header serialises")
        )
        .as_bytes(),
    )?;
    let written = write_tables(&mut tx, db.backend, &tables, &mut sink).await?;
    tx.commit().await?;
    // the counts were taken in the same snapshot, so they agree; a difference is a bug worth stopping for
    for (t, n) in header.tables.iter().zip(&written) {
        if t.rows != *n {
            return Err(BackupError::Corrupt(format!(
                "table {} counted {} rows but {} were written",
                t.name, t.rows, n
            )));
        }
    }
    let total: i64 = written.iter().sum();
    let trailer = json!({"end": true, "rows": total, "sha256": hex::encode(hash.finalize())});
    gz.write_all(format!("{trailer}\n").as_bytes())
        .map_err(io("cannot write the backup"))?;
    gz.finish()
        .and_then(|mut w| w.flush().map(|_| w))
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all())
        .map_err(io("cannot write the backup"))?;
    file.finish()?;
    Ok(Summary::of(&header))
}

/// A pool of one connection on a SQLite file, outside the server's pool and settings.
async fn open_file(path: &Path) -> Result<sqlx::AnyPool> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rw", path.display());
    Ok(sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?)
}

/// SHA-256 of a database's content and its row counts, as a snapshot's manifest holds them.
async fn content(conn: &mut AnyConnection) -> Result<(Vec<Table>, Vec<i64>, String)> {
    let tables = catalog(&mut *conn, Backend::Sqlite).await?;
    let mut hash = Sha256::new();
    let counts = write_tables(&mut *conn, Backend::Sqlite, &tables, &mut |b: &[u8]| {
        hash.update(b);
        Ok(())
    })
    .await?;
    Ok((tables, counts, hex::encode(hash.finalize())))
}

/// A SQLite snapshot (see the module's documentation) to a new file `out`.
pub async fn snapshot(db: &Db, out: &Path, keping_version: &str) -> Result<Summary> {
    if db.backend != Backend::Sqlite {
        return Err(BackupError::Refused(
            "a snapshot is for SQLite; PostgreSQL backs up as an export".into(),
        ));
    }
    let file = NewFile::new(out)?;
    sqlx::query("VACUUM INTO $1")
        .bind(file.partial.display().to_string())
        .execute(&db.pool)
        .await?;
    let pool = open_file(&file.partial).await?;
    let mut conn = pool.acquire().await?;
    sqlx::query("PRAGMA journal_mode=DELETE")
        .execute(&mut *conn)
        .await?;
    let (tables, counts, sha256) = content(&mut conn).await?;
    let header = Header {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        kind: "sqlite_snapshot".into(),
        keping_version: keping_version.into(),
        source: "sqlite".into(),
        schema_versions: schema_versions(&mut conn).await?,
        created_at: now_text(),
        tables: tables
            .iter()
            .zip(&counts)
            .map(|(t, n)| TableHeader {
                name: t.name.clone(),
                columns: Vec::new(),
                rows: *n,
            })
            .collect(),
        sha256: Some(sha256),
    };
    sqlx::query("CREATE TABLE backup_manifest (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO backup_manifest (name, value) VALUES ('manifest', $1)")
        .bind(serde_json::to_string(&header).expect("header serialises"))
        .execute(&mut *conn)
        .await?;
    drop(conn);
    pool.close().await;
    file.finish()?;
    Ok(Summary::of(&header))
}

// ---------------------------------------------------------------- reading

/// What a file is, from its first bytes.
enum FileKind {
    Snapshot,
    Export,
}

fn sniff(path: &Path) -> Result<FileKind> {
    let mut f = std::fs::File::open(path).map_err(io(format!("cannot open {}", path.display())))?;
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(io(format!("cannot read {}", path.display()))(e)),
        }
    }
    if head[..n].starts_with(SQLITE_MAGIC) {
        Ok(FileKind::Snapshot)
    } else if head[..n].starts_with(GZIP_MAGIC) {
        Ok(FileKind::Export)
    } else if n == 0 {
        Err(BackupError::NotABackup(format!(
            "{} is empty: not a keping backup",
            path.display()
        )))
    } else {
        Err(BackupError::NotABackup(format!(
            "{} is not a keping backup: it is neither a SQLite snapshot nor a keping export (gzip)",
            path.display()
        )))
    }
}

/// Reads an export line by line, hashing what it reads, with errors that say what is wrong.
struct ExportReader {
    lines: BufReader<GzDecoder<BufReader<std::fs::File>>>,
    hash: Sha256,
    line_no: usize,
}

impl ExportReader {
    fn open(path: &Path) -> Result<ExportReader> {
        let f = std::fs::File::open(path).map_err(io(format!("cannot open {}", path.display())))?;
        Ok(ExportReader {
            lines: BufReader::new(GzDecoder::new(BufReader::new(f))),
            hash: Sha256::new(),
            line_no: 0,
        })
    }

    /// The next line (without hashing it); None at the end of the stream.
    fn line(&mut self) -> Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        match self.lines.read_until(b'\n', &mut line) {
            Ok(0) => Ok(None),
            Ok(_) => {
                self.line_no += 1;
                if line.last() != Some(&b'\n') {
                    return Err(BackupError::Truncated(format!(
                        "line {} ends in the middle",
                        self.line_no
                    )));
                }
                Ok(Some(line))
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(BackupError::Truncated(
                format!("the compressed stream ends after line {}", self.line_no),
            )),
            Err(e) => Err(BackupError::Corrupt(format!(
                "cannot decompress after line {}: {e}",
                self.line_no
            ))),
        }
    }

    fn header(&mut self) -> Result<Header> {
        let not_ours = || {
            BackupError::NotABackup(
                "a gzip file, but not a keping export (its first line is no keping header)".into(),
            )
        };
        let line = self.line().map_err(|e| match e {
            BackupError::Corrupt(_) | BackupError::Truncated(_) => not_ours(),
            e => e,
        })?;
        let line = line.ok_or_else(not_ours)?;
        self.hash.update(&line);
        let header: Header = serde_json::from_slice(&line).map_err(|_| not_ours())?;
        if header.format != FORMAT || header.kind != "export" {
            return Err(not_ours());
        }
        check_versions(&header)?;
        Ok(header)
    }
}

fn check_versions(h: &Header) -> Result<()> {
    if h.format_version > FORMAT_VERSION {
        return Err(BackupError::NotABackup(format!(
            "the backup has format version {}; this keping reads up to {FORMAT_VERSION}",
            h.format_version
        )));
    }
    let known = crate::migrate::latest();
    if let Some(found) = h
        .schema_versions
        .iter()
        .copied()
        .max()
        .filter(|v| *v > known)
    {
        return Err(BackupError::NewerSchema { found, known });
    }
    Ok(())
}

/// Loads an export's rows into `db` (migrated to the export's schema) in one transaction: all of
/// it, checked against the header and the trailer, or nothing.
async fn load(db: &Db, reader: &mut ExportReader, header: &Header) -> Result<()> {
    let mut tx = db.begin().await?;
    let tables = catalog(&mut tx, db.backend).await?;
    let mut total = 0i64;
    let mut section: Option<(usize, &Table, i64)> = None;
    let mut batch: Vec<Vec<Value>> = Vec::new();
    let mut later: Vec<(String, Vec<Value>)> = Vec::new();
    loop {
        let Some(line) = reader.line()? else {
            return Err(BackupError::Truncated(format!(
                "it ends after line {} without its end record",
                reader.line_no
            )));
        };
        let value: Value = serde_json::from_slice(&line).map_err(|e| {
            BackupError::Corrupt(format!("line {} is not JSON: {e}", reader.line_no))
        })?;
        if let Value::Array(row) = value {
            reader.hash.update(&line);
            let Some((h, table, n)) = section.as_mut() else {
                return Err(BackupError::Corrupt(format!(
                    "line {} holds a row before any table",
                    reader.line_no
                )));
            };
            if row.len() != header.tables[*h].columns.len() {
                return Err(BackupError::Corrupt(format!(
                    "line {} has {} values; table {} has {} columns",
                    reader.line_no,
                    row.len(),
                    table.name,
                    header.tables[*h].columns.len()
                )));
            }
            *n += 1;
            batch.push(row);
            if batch.len() * header.tables[*h].columns.len() >= PARAMS_PER_INSERT {
                insert(
                    &mut tx,
                    db.backend,
                    &header.tables[*h],
                    table,
                    &mut batch,
                    &mut later,
                )
                .await?;
            }
            continue;
        }
        // a table boundary or the end: finish the table loaded so far
        if let Some((h, table, n)) = section.take() {
            insert(
                &mut tx,
                db.backend,
                &header.tables[h],
                table,
                &mut batch,
                &mut later,
            )
            .await?;
            fix_self_refs(&mut tx, table, &mut later).await?;
            if n != header.tables[h].rows {
                return Err(BackupError::Corrupt(format!(
                    "table {} holds {n} rows; the header says {}",
                    table.name, header.tables[h].rows
                )));
            }
            total += n;
        }
        if value.get("end").and_then(Value::as_bool) == Some(true) {
            let expected = value.get("sha256").and_then(Value::as_str).unwrap_or("");
            let actual = hex::encode(std::mem::take(&mut reader.hash).finalize());
            if expected != actual {
                return Err(BackupError::Corrupt(format!(
                    "checksum mismatch: the file says {expected}, its content hashes to {actual}"
                )));
            }
            if value.get("rows").and_then(Value::as_i64) != Some(total) {
                return Err(BackupError::Corrupt(format!(
                    "the end record's row count differs from the {total} rows read"
                )));
            }
            if reader.line()?.is_some() {
                return Err(BackupError::Corrupt(
                    "there is more after the end record".into(),
                ));
            }
            break;
        }
        reader.hash.update(&line);
        let name = value.get("table").and_then(Value::as_str).ok_or_else(|| {
            BackupError::Corrupt(format!(
                "line {} is neither a row nor a table",
                reader.line_no
            ))
        })?;
        let h = header
            .tables
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| BackupError::Corrupt(format!("table {name} is not in the header")))?;
        let table = tables.iter().find(|t| t.name == name).ok_or_else(|| {
            BackupError::Corrupt(format!(
                "table {name} does not exist in schema version {}",
                header.schema_versions.last().copied().unwrap_or(0)
            ))
        })?;
        for c in &header.tables[h].columns {
            if !table.columns.iter().any(|t| t.name == c.name) {
                return Err(BackupError::Corrupt(format!(
                    "column {name}.{} does not exist in this schema",
                    c.name
                )));
            }
        }
        section = Some((h, table, 0));
    }
    if db.backend == Backend::Postgres {
        // ids were given explicitly: move each identity past the largest one
        for t in &tables {
            if t.columns.iter().any(|c| c.name == "id") {
                sqlx::query(&format!(
                    "SELECT setval(s::regclass, (SELECT COALESCE(MAX(id), 0) + 1 FROM {0}), false)::int8 FROM (SELECT pg_get_serial_sequence('{0}', 'id') AS s) x WHERE s IS NOT NULL",
                    t.name
                ))
                .fetch_all(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Inserts the batch; columns referring to the same table go in as null and are set afterwards.
async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    header: &TableHeader,
    table: &Table,
    batch: &mut Vec<Vec<Value>>,
    later: &mut Vec<(String, Vec<Value>)>,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = header.columns.iter().map(|c| c.name.as_str()).collect();
    let mut sql = Sql::new(&format!(
        "INSERT INTO {} ({}) VALUES ",
        table.name,
        names.join(", ")
    ));
    for (r, row) in batch.iter().enumerate() {
        sql.push(if r == 0 { "(" } else { ", (" });
        for (i, (c, v)) in header.columns.iter().zip(row).enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            let v = if table.self_refs.contains(&c.name) && !v.is_null() {
                later.push((c.name.clone(), row.clone()));
                &Value::Null
            } else {
                v
            };
            sql.arg(arg(&table.name, c, v)?);
            if backend == Backend::Postgres {
                let target = table
                    .columns
                    .iter()
                    .find(|t| t.name == c.name)
                    .map_or("text", |t| t.pg_type.as_str());
                sql.push("::").push(target);
            }
        }
        sql.push(")");
    }
    sql.execute(&mut **tx).await.map_err(|e| {
        BackupError::Corrupt(format!("its rows of table {} do not load: {e}", table.name))
    })?;
    batch.clear();
    Ok(())
}

/// Sets the self-referring columns put aside by [`insert`] (by the row's `id`).
async fn fix_self_refs(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    table: &Table,
    later: &mut Vec<(String, Vec<Value>)>,
) -> Result<()> {
    if later.is_empty() {
        return Ok(());
    }
    let id_at = table.columns.iter().position(|c| c.name == "id");
    let col_at = |name: &str| table.columns.iter().position(|c| c.name == name);
    for (column, row) in later.drain(..) {
        let (Some(id_at), Some(at)) = (id_at, col_at(&column)) else {
            return Err(BackupError::Refused(format!(
                "table {} refers to itself without an id column; backups cannot load it",
                table.name
            )));
        };
        Sql::new(&format!("UPDATE {} SET {column} = ", table.name))
            .arg(row[at].as_i64())
            .push(" WHERE id = ")
            .arg(row[id_at].as_i64())
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                BackupError::Corrupt(format!("table {}.{column} does not load: {e}", table.name))
            })?;
    }
    Ok(())
}

fn arg(table: &str, c: &Column, v: &Value) -> Result<Arg> {
    let wrong = || {
        BackupError::Corrupt(format!(
            "a value of {table}.{} is not of its kind ({:?})",
            c.name, c.kind
        ))
    };
    Ok(match c.kind {
        Kind::Int => Arg::Int(match v {
            Value::Null => None,
            v => Some(v.as_i64().ok_or_else(wrong)?),
        }),
        Kind::Real => Arg::Real(match v {
            Value::Null => None,
            v => Some(v.as_f64().ok_or_else(wrong)?),
        }),
        Kind::Text => Arg::Text(match v {
            Value::Null => None,
            v => Some(v.as_str().ok_or_else(wrong)?.to_string()),
        }),
        Kind::Blob => Arg::Bytes(match v {
            Value::Null => None,
            v => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().ok_or_else(wrong)?)
                    .map_err(|_| wrong())?,
            ),
        }),
    })
}

// ---------------------------------------------------------------- verify and restore

/// Where `verify` restores an export: a temporary SQLite file, or a scratch database on a
/// PostgreSQL server (given by its URL; the scratch database is dropped afterwards).
pub enum Scratch {
    Sqlite,
    Postgres(String),
}

/// Restores a backup into a scratch database and checks it: header, schema version, checksum,
/// row counts against the header, integrity and foreign keys, and that this keping can migrate it.
/// The file and every other database stay untouched.
pub async fn verify(file: &Path, scratch: Scratch) -> Result<Summary> {
    match sniff(file)? {
        FileKind::Snapshot => verify_snapshot(file).await,
        FileKind::Export => {
            let mut reader = ExportReader::open(file)?;
            let header = reader.header()?;
            let mut summary = Summary::of(&header);
            match scratch {
                Scratch::Sqlite => {
                    let dir = tempfile::tempdir().map_err(io("cannot make a scratch directory"))?;
                    let url = format!("sqlite://{}", dir.path().join("verify.db").display());
                    let db = Db::open(&url).await?;
                    let checked = restore_into(&db, &mut reader, &header).await;
                    db.pool.close().await;
                    summary.checks = checked?;
                    summary
                        .checks
                        .push("restored into a scratch SQLite database".into());
                }
                Scratch::Postgres(server) => {
                    let (url, name) = scratch_pg(&server).await?;
                    let checked = async {
                        let db = Db::open(&url).await?;
                        let checked = restore_into(&db, &mut reader, &header).await;
                        db.pool.close().await;
                        checked
                    }
                    .await;
                    drop_pg(&server, &name).await;
                    summary.checks = checked?;
                    summary.checks.push(format!(
                        "restored into a scratch PostgreSQL database ({name}, dropped again)"
                    ));
                }
            }
            Ok(summary)
        }
    }
}

/// Loads an export into an empty `db` and checks the result; answers what was checked.
async fn restore_into(db: &Db, reader: &mut ExportReader, header: &Header) -> Result<Vec<String>> {
    let upto = header.schema_versions.iter().copied().max();
    db.migrate_to(upto).await?;
    let mut conn = db.pool.acquire().await?;
    let applied = schema_versions(&mut conn).await?;
    if applied != header.schema_versions {
        return Err(BackupError::Refused(format!(
            "the backup's schema (migrations {:?}) cannot be rebuilt by this keping (it makes {:?})",
            header.schema_versions, applied
        )));
    }
    for t in catalog(&mut conn, db.backend).await? {
        if !SEEDED.contains(&t.name.as_str()) && row_count(&mut conn, &t.name).await? != 0 {
            return Err(BackupError::Refused(format!(
                "the database is not empty (table {} has rows); restore only into an empty database",
                t.name
            )));
        }
    }
    // the backup brings its own copy of what the migrations installed
    for table in SEEDED {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *conn)
            .await?;
    }
    drop(conn);
    load(db, reader, header).await?;
    let mut checks = vec![
        format!("header: {FORMAT} format {}", header.format_version),
        "checksum (SHA-256) matches".to_string(),
    ];
    let mut conn = db.pool.acquire().await?;
    for t in &header.tables {
        let n = row_count(&mut conn, &t.name).await?;
        if n != t.rows {
            return Err(BackupError::Corrupt(format!(
                "table {} restored {n} rows; the header says {}",
                t.name, t.rows
            )));
        }
    }
    checks.push("row counts of every table match the header".into());
    if db.backend == Backend::Sqlite {
        integrity(&mut conn).await?;
        checks.push("integrity_check and foreign_key_check pass".into());
    } else {
        checks.push("foreign keys hold (PostgreSQL enforced them while loading)".into());
    }
    drop(conn);
    db.migrate_to(None).await?;
    checks.push(format!(
        "migrates to this keping's schema ({})",
        crate::migrate::latest()
    ));
    Ok(checks)
}

async fn integrity(conn: &mut AnyConnection) -> Result<()> {
    let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| BackupError::Corrupt(format!("integrity check failed: {e}")))?;
    if rows.len() != 1 || rows[0].0 != "ok" {
        return Err(BackupError::Corrupt(format!(
            "integrity check: {}",
            rows.into_iter()
                .map(|(r,)| r)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let broken: i64 = sqlx::query("SELECT COUNT(*) FROM pragma_foreign_key_check")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    if broken > 0 {
        return Err(BackupError::Corrupt(format!(
            "{broken} rows refer to rows that are not there (foreign_key_check)"
        )));
    }
    Ok(())
}

async fn verify_snapshot(file: &Path) -> Result<Summary> {
    // work on a copy: opening the file itself could leave journal files beside it
    let dir = tempfile::tempdir().map_err(io("cannot make a scratch directory"))?;
    let copy = dir.path().join("verify.db");
    std::fs::copy(file, &copy).map_err(io(format!("cannot copy {}", file.display())))?;
    let damaged = |e: BackupError| match e {
        BackupError::Store(StoreError::Database(e)) => {
            BackupError::Corrupt(format!("SQLite cannot read it: {e}"))
        }
        e => e,
    };
    let pool = open_file(&copy).await.map_err(damaged)?;
    let checked = async {
        let mut conn = pool.acquire().await?;
        integrity(&mut conn).await?;
        let manifest: Option<(String,)> =
            sqlx::query_as("SELECT value FROM backup_manifest WHERE name = 'manifest'")
                .fetch_optional(&mut *conn)
                .await
                .map_err(|_| {
                    BackupError::NotABackup(
                        "a SQLite database, but not a keping backup: it has no backup manifest (make backups with `keping backup`)".into(),
                    )
                })?;
        let header: Header = manifest
            .and_then(|(m,)| serde_json::from_str(&m).ok())
            .filter(|h: &Header| h.format == FORMAT && h.kind == "sqlite_snapshot")
            .ok_or_else(|| BackupError::NotABackup("the backup manifest is not keping's".into()))?;
        check_versions(&header)?;
        if schema_versions(&mut conn).await? != header.schema_versions {
            return Err(BackupError::Corrupt(
                "its schema versions differ from the manifest".into(),
            ));
        }
        let (tables, counts, sha256) = content(&mut conn).await?;
        for (t, n) in tables.iter().zip(&counts) {
            let expected = header.tables.iter().find(|h| h.name == t.name).map(|h| h.rows);
            if expected != Some(*n) {
                return Err(BackupError::Corrupt(format!(
                    "table {} holds {n} rows; the manifest says {}",
                    t.name,
                    expected.map_or("none".to_string(), |e| e.to_string())
                )));
            }
        }
        if header.tables.len() != tables.len() {
            return Err(BackupError::Corrupt(
                "tables named in the manifest are missing".into(),
            ));
        }
        if header.sha256.as_deref() != Some(sha256.as_str()) {
            return Err(BackupError::Corrupt(format!(
                "checksum mismatch: the manifest says {}, the content hashes to {sha256}",
                header.sha256.as_deref().unwrap_or("nothing")
            )));
        }
        Ok::<_, BackupError>(header)
    }
    .await
    .map_err(damaged);
    pool.close().await;
    let header = checked?;
    // this keping can take it over: migrate the copy to the current schema
    let db = Db::open(&format!("sqlite://{}", copy.display())).await?;
    let migrated = db.migrate_to(None).await;
    db.pool.close().await;
    migrated?;
    let mut summary = Summary::of(&header);
    summary.checks = vec![
        format!("manifest: {FORMAT} format {}", header.format_version),
        "integrity_check and foreign_key_check pass".into(),
        "row counts of every table match the manifest".into(),
        "checksum (SHA-256) of the content matches".into(),
        format!(
            "migrates to this keping's schema ({})",
            crate::migrate::latest()
        ),
    ];
    Ok(summary)
}

/// Creates a scratch database on a PostgreSQL server; answers its URL and name.
async fn scratch_pg(server: &str) -> Result<(String, String)> {
    use sqlx::Connection;
    let name = format!(
        "keping_verify_{}_{}",
        keping_domain::now_millis(),
        std::process::id()
    );
    let mut conn = sqlx::PgConnection::connect(server).await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    let (base, rest) = server.rsplit_once('/').unwrap_or((server, ""));
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Ok((format!("{base}/{name}{query}"), name))
}

async fn drop_pg(server: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(server).await {
        if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await
        {
            tracing::warn!(database = name, error = %e, "cannot drop the scratch database");
        }
    }
}

/// Restores an export into `db`, which must be empty (no rows in any table): all of it, checked,
/// in one transaction, or nothing. A SQLite snapshot is restored by putting the file in place.
pub async fn restore(db: &Db, file: &Path) -> Result<Summary> {
    match sniff(file)? {
        FileKind::Snapshot => Err(BackupError::Refused(format!(
            "{} is a SQLite snapshot: stop keping and put the file in place of the database file (after `keping backup verify`); `keping restore` loads exports",
            file.display()
        ))),
        FileKind::Export => {
            let mut reader = ExportReader::open(file)?;
            let header = reader.header()?;
            let mut summary = Summary::of(&header);
            summary.checks = restore_into(db, &mut reader, &header).await?;
            Ok(summary)
        }
    }
}

/// A backup of `db` (as [`create`] makes it) in a file that is already unlinked: the open handle
/// reads it and the space is freed when the handle closes. For downloads. Answers the handle, what
/// was written and the file name to offer.
pub async fn create_unlinked(
    db: &Db,
    keping_version: &str,
) -> Result<(std::fs::File, Summary, String)> {
    let dir = tempfile::tempdir().map_err(io("cannot make a temporary directory"))?;
    let name = format!(
        "keping-{}-{}.{}",
        db.backend.name(),
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        match db.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "keping.gz",
        }
    );
    let path = dir.path().join(&name);
    let summary = create(db, &path, keping_version).await?;
    let file = std::fs::File::open(&path).map_err(io("cannot open the backup"))?;
    drop(dir);
    Ok((file, summary, name))
}

/// Records a downloaded backup in the audit log (every export is logged), under the caller's root org.
pub async fn record_download(
    db: &Db,
    scope: &keping_domain::scope::Scope,
    summary: &Summary,
    file_name: &str,
) -> Result<(), StoreError> {
    let root = keping_domain::org::OrgPath::root(scope.org_path.ids()[0]);
    crate::audit::record(
        &db.pool,
        scope.into(),
        crate::audit::Entry {
            org_path: root.as_str(),
            action: "backup",
            entity: "database",
            entity_id: None,
            summary: format!(
                "downloaded {file_name} ({}, {} rows)",
                summary.kind.replace('_', " "),
                summary.rows()
            ),
            changes: None,
        },
    )
    .await
}

/// Per-table row counts of a live database, for comparing it with a backup.
pub async fn table_counts(db: &Db) -> Result<BTreeMap<String, i64>> {
    let mut conn = db.pool.acquire().await?;
    let mut out = BTreeMap::new();
    for t in catalog(&mut conn, db.backend).await? {
        let n = row_count(&mut conn, &t.name).await?;
        out.insert(t.name, n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, parents: &[&str]) -> Table {
        Table {
            name: name.into(),
            columns: Vec::new(),
            pk: vec!["id".into()],
            parents: parents.iter().map(|p| p.to_string()).collect(),
            self_refs: Vec::new(),
        }
    }

    #[test]
    fn tables_load_parents_first_and_cycles_are_refused() {
        let ordered = order(vec![
            table("ratings", &["orgs", "windows"]),
            table("windows", &["orgs"]),
            table("audit_log", &[]),
            table("orgs", &[]),
        ])
        .unwrap();
        let names: Vec<&str> = ordered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["audit_log", "orgs", "windows", "ratings"]);
        let err = order(vec![table("a", &["b"]), table("b", &["a"])]).unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
    }

    #[test]
    fn column_kinds_by_declared_type() {
        assert_eq!(sqlite_kind("t", "c", "BIGINT").unwrap(), Kind::Int);
        assert_eq!(sqlite_kind("t", "c", "INTEGER").unwrap(), Kind::Int);
        assert_eq!(sqlite_kind("t", "c", "TEXT").unwrap(), Kind::Text);
        assert_eq!(sqlite_kind("t", "c", "BLOB").unwrap(), Kind::Blob);
        assert_eq!(pg_kind("t", "c", "character varying").unwrap(), Kind::Text);
        assert_eq!(pg_kind("t", "c", "jsonb").unwrap(), Kind::Text);
        assert_eq!(pg_kind("t", "c", "bytea").unwrap(), Kind::Blob);
        let err = pg_kind("t", "c", "uuid").unwrap_err();
        assert!(err.to_string().contains("t.c"), "{err}");
    }
}
