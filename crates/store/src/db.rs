use crate::{migrate, Result, StoreError};
use keping_domain::org::OrgPath;
use keping_domain::scope::{Reach, RecordReach, Scope};
use keping_domain::Invalid;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, FromRow, Transaction};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The connection pool and which backend it talks to.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// Kept for connections outside the pool (PostgreSQL LISTEN); never printed: it may hold a password.
    pub url: String,
    /// Terminals recently authenticated, by token digest: a terminal sends several requests a
    /// second under load, and each would otherwise cost a query.
    pub(crate) devices: std::sync::Arc<RecentCache<crate::evaluation::Device>>,
    /// Signed-in callers recently authenticated, by token digest, with their scope: a token and
    /// a scope query per request were most of a short list's cost.
    pub(crate) callers: std::sync::Arc<RecentCache<(crate::tokens::Holder, Scope)>>,
}

/// How long a terminal's authentication is trusted without asking the database again. This
/// instance forgets every entry when a terminal, window or org changes; another instance sharing
/// the database sees a revocation within this time.
const DEVICE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// The same for a signed-in caller (token, account and scope). This instance forgets every entry
/// when a token, account, role or org changes; another instance sees such a change within this time.
const CALLER_TTL: std::time::Duration = std::time::Duration::from_secs(2);
/// Beyond this many entries, expired ones are dropped when a new one comes.
const RECENT_PRUNE_AT: usize = 10_000;

/// Answers looked up by a secret's digest and trusted for a short time.
pub(crate) struct RecentCache<V> {
    ttl: std::time::Duration,
    entries: std::sync::Mutex<std::collections::HashMap<String, (V, std::time::Instant)>>,
}

impl<V: Clone> RecentCache<V> {
    fn new(ttl: std::time::Duration) -> Self {
        RecentCache {
            ttl,
            entries: Default::default(),
        }
    }

    pub(crate) fn get(&self, digest: &str) -> Option<V> {
        let entries = self.entries.lock().expect("recent cache lock");
        entries
            .get(digest)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    pub(crate) fn put(&self, digest: String, value: V) {
        let mut entries = self.entries.lock().expect("recent cache lock");
        if entries.len() >= RECENT_PRUNE_AT {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        entries.insert(digest, (value, std::time::Instant::now()));
    }

    pub(crate) fn forget_all(&self) {
        self.entries.lock().expect("recent cache lock").clear();
    }
}

impl Db {
    /// Tokens, accounts, roles, terminals, windows or orgs changed: who a secret belongs to and
    /// what he may do is asked of the database again.
    pub(crate) fn forget_authentications(&self) {
        self.devices.forget_all();
        self.callers.forget_all();
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Connects (creating a SQLite file and its directory when needed) and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Db> {
        let db = Db::open(url).await?;
        migrate::run(&db).await?;
        Ok(db)
    }

    /// Connects and migrates for a server that runs [`Db::checkpoint_loop`]: on SQLite a commit
    /// then leaves the copying of the WAL into the database to that loop instead of doing it
    /// before it answers.
    pub async fn connect_serving(url: &str) -> Result<Db> {
        let db = Db::open_with(url, SERVING_AUTOCHECKPOINT).await?;
        migrate::run(&db).await?;
        Ok(db)
    }

    /// Connects without migrating (a backup being restored migrates step by step).
    pub async fn open(url: &str) -> Result<Db> {
        Db::open_with(url, AUTOCHECKPOINT).await
    }

    /// Copies the SQLite WAL into the database in the background, once a second, until `stop`
    /// changes (nothing on PostgreSQL). A passive checkpoint waits for no one: readers and the
    /// writer go on while it copies.
    pub async fn checkpoint_loop(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.backend != Backend::Sqlite {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await
            {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    }

    async fn open_with(url: &str, autocheckpoint: i64) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(sqlx::Error::Configuration(
                format!("unsupported database URL '{url}': use sqlite:… or postgres://…").into(),
            )
            .into());
        };
        let mut url = url.to_string();
        if backend == Backend::Sqlite {
            if let Some(dir) = sqlite_file(&url)
                .and_then(|f| std::path::Path::new(&f).parent().map(|p| p.to_path_buf()))
            {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        sqlx::Error::Configuration(
                            format!("cannot create {}: {e}", dir.display()).into(),
                        )
                    })?;
                }
            }
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
        }
        if backend == Backend::Sqlite {
            configure_sqlite();
        }
        let options = sqlx::any::AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            // a SQLite connection is a file handle and never goes stale: no ping before each use
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; NORMAL is durable across a process crash in WAL mode;
                        // pages are read through a memory map (up to SQLite's 2 GiB cap) rather than a system call and a
                        // copy each, which was a third of a large read's time
                        conn.execute("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA mmap_size=2147418112;").await?;
                        // a page cache of 16 MiB rather than 2 keeps hot pages between transactions instead of
                        // reading them back from the WAL
                        conn.execute(format!("PRAGMA wal_autocheckpoint={autocheckpoint}; PRAGMA cache_size={PAGE_CACHE};").as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            backend,
            url: url.clone(),
            devices: std::sync::Arc::new(RecentCache::new(DEVICE_TTL)),
            callers: std::sync::Arc::new(RecentCache::new(CALLER_TTL)),
        })
    }

    /// Applies the migrations up to version `upto` (all when None).
    pub async fn migrate_to(&self, upto: Option<i64>) -> Result<()> {
        migrate::run_to(self, upto).await
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A read-only transaction: one consistent snapshot for reads that take several queries.
    pub async fn read(&self) -> Result<sqlx::Transaction<'static, Any>> {
        Ok(self.pool.begin().await?)
    }

    /// A read-only transaction whose statements all see one snapshot on PostgreSQL too (there
    /// each statement of a [`Db::read`] transaction sees what was committed before it began).
    pub async fn snapshot(&self) -> Result<sqlx::Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        })
    }

    /// A write transaction. On SQLite it takes the write lock at once (BEGIN IMMEDIATE): a deferred
    /// one that reads first could not upgrade while another writer commits, and would fail instead of waiting.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with(BEGIN_WRITE).await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// [`Db::begin`] on a connection the caller holds.
    pub async fn begin_on<'c>(
        &self,
        conn: &'c mut sqlx::AnyConnection,
    ) -> Result<sqlx::Transaction<'c, Any>> {
        use sqlx::Connection;
        Ok(match self.backend {
            Backend::Sqlite => conn.begin_with(BEGIN_WRITE).await?,
            Backend::Postgres => conn.begin().await?,
        })
    }
}

/// How a SQLite write transaction begins (see [`Db::begin`]).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

fn sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next()?;
    (!file.is_empty() && file != ":memory:").then(|| file.to_string())
}

/// A page of a list, as every list in the API answers.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only says that more follow.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        let next_cursor = if more {
            rows.last().map(|r| hex::encode(cursor_of(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// Reads a cursor made by [`Page::from_rows`]; a forged one is simply an invalid value.
pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>> {
    match cursor.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) => hex::decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| {
                keping_domain::Invalid::new(
                    "cursor",
                    "invalid_cursor",
                    "the cursor is not one this server made",
                )
                .into()
            }),
    }
}

/// Keeps a list to one org's subtree (columns `o.path`), which must lie within the reach.
pub(crate) async fn only_under(db: &Db, sql: &mut Sql, reach: &Reach, org_id: i64) -> Result<()> {
    let (path,): (String,) = Sql::new("SELECT path FROM orgs WHERE id = ")
        .arg(org_id)
        .fetch_one(&db.pool)
        .await?;
    let path = OrgPath::parse(&path).expect("stored org paths are well formed");
    if !reach.contains(&path) {
        return Err(StoreError::NotFound);
    }
    let (lo, hi) = path.subtree_range();
    sql.push(" AND o.path >= ")
        .arg(lo)
        .push(" AND o.path < ")
        .arg(hi);
    Ok(())
}

/// A SQL string literal: quotes doubled. For bulk statements whose values are written into the
/// text, because binding a million texts through sqlx's `Any` costs more than inserting them. The
/// text must hold no NUL (validated text holds no control characters; JSON escapes them); both
/// backends read backslashes literally.
pub(crate) fn push_quoted(out: &mut String, text: &str) {
    out.push('\'');
    let mut rest = text;
    // a byte search: a term or a name rarely has a quote, and this runs millions of times an import
    while let Some(at) = rest.bytes().position(|b| b == b'\'') {
        out.push_str(&rest[..=at]);
        out.push('\'');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.push('\'');
}

/// WAL pages after which the committing connection copies the WAL into the database: 64 MiB
/// rather than SQLite's 4 MiB, which under a stream of press batches ran after nearly every commit,
/// copying and syncing the same hot pages each time.
const AUTOCHECKPOINT: i64 = 16_384;

/// The same for a server, whose [`Db::checkpoint_loop`] does that work off the writers' path:
/// 1 GiB, a backstop only (a large import's transaction alone can write a few hundred MiB).
const SERVING_AUTOCHECKPOINT: i64 = 262_144;

/// SQLite's page cache per connection, in KiB as the pragma reads negative sizes: 16 MiB.
const PAGE_CACHE: i64 = -16_384;

/// SQLite's page cache while one transaction writes many rows into large indexes (a grading
/// run's results, an import's search terms): 256 MiB, in KiB as the pragma reads negative sizes.
const BULK_PAGE_CACHE: i64 = -262_144;

/// Gives the transaction's SQLite connection a page cache to match a bulk write; nothing on
/// PostgreSQL. Follow it with [`restore_page_cache`] whether the write succeeded or not.
pub(crate) async fn enlarge_page_cache(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
) -> Result<()> {
    if backend == Backend::Sqlite {
        Sql::new(&format!("PRAGMA cache_size = {BULK_PAGE_CACHE}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// SQLite's default page cache back, for the connection's other uses.
pub(crate) async fn restore_page_cache(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
) -> Result<()> {
    if backend == Backend::Sqlite {
        Sql::new(&format!("PRAGMA cache_size = {PAGE_CACHE}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The id after which a newest-first or oldest-first list goes on.
pub(crate) fn id_cursor(cursor: Option<&str>) -> Result<Option<i64>> {
    decode_cursor(cursor)?
        .map(|after| {
            after.parse().map_err(|_| {
                Invalid::new(
                    "cursor",
                    "invalid_cursor",
                    "the cursor is not one this server made",
                )
                .into()
            })
        })
        .transpose()
}

/// A value bound to a `$n` parameter.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Int(Some(v as i64))
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::Real(Some(v))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_string))
    }
}
impl From<Option<Vec<u8>>> for Arg {
    fn from(v: Option<Vec<u8>>) -> Self {
        Arg::Bytes(v)
    }
}

/// SQL text with its arguments, numbered `$1, $2…` as they are pushed, for both backends.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
    /// Plain `?` placeholders instead of `$n` (SQLite only; see [`Sql::bulk`]).
    positional: bool,
    /// Whether the prepared statement is kept for reuse (see [`Sql::bulk`]).
    cached: bool,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: Vec::new(),
            positional: false,
            cached: true,
        }
    }

    /// For statements with hundreds or thousands of parameters (multi-row INSERTs, batches). On
    /// SQLite their placeholders are plain `?`: sqlx binds a `$n` by asking SQLite for each
    /// parameter's name, a linear search, which makes binding n parameters cost n². Their text
    /// varies with the number of rows, so they are not kept as prepared statements: each
    /// connection would keep a hundred large ones.
    pub fn bulk(backend: Backend, text: &str) -> Sql {
        Sql {
            positional: backend == Backend::Sqlite,
            cached: false,
            ..Sql::new(text)
        }
    }

    /// For statements whose values are written into the text (see [`push_quoted`]): no two are
    /// alike, so none is kept as a prepared statement, and PostgreSQL plans each for its values.
    pub fn literal(text: &str) -> Sql {
        Sql {
            cached: false,
            ..Sql::new(text)
        }
    }

    /// This statement inside another: `head`, this statement, `tail` (text without parameters).
    pub fn wrapped(mut self, head: &str, tail: &str) -> Sql {
        self.text.insert_str(0, head);
        self.text.push_str(tail);
        self
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a parameter placeholder and binds `value` to it.
    pub fn arg(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.args.push(value.into());
        if self.positional {
            self.text.push('?');
        } else {
            self.text.push('$');
            self.text.push_str(&self.args.len().to_string());
        }
        self
    }

    /// Appends `column IN (ids…)`; `ids` must not be empty.
    pub fn in_ids(&mut self, column: &str, ids: &[i64]) -> &mut Self {
        self.push(column).push(" IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.arg(*id);
        }
        self.push(")")
    }

    /// Appends a condition keeping rows whose org path (column `path_col`) lies within `reach`.
    pub fn reach(&mut self, path_col: &str, reach: &Reach) -> &mut Self {
        match reach {
            Reach::Nothing => self.push("1=0"),
            Reach::Everything => self.push("1=1"),
            Reach::Some { subtrees, nodes } => {
                self.push("(");
                let mut first = true;
                for s in subtrees {
                    let (lo, hi) = s.subtree_range();
                    if !first {
                        self.push(" OR ");
                    }
                    first = false;
                    self.push("(")
                        .push(path_col)
                        .push(" >= ")
                        .arg(lo)
                        .push(" AND ")
                        .push(path_col)
                        .push(" < ")
                        .arg(hi)
                        .push(")");
                }
                for n in nodes {
                    if !first {
                        self.push(" OR ");
                    }
                    first = false;
                    self.push(path_col).push(" = ").arg(n.as_str());
                }
                self.push(")")
            }
        }
    }

    /// Appends a condition for owned records: within the org reach, or owned by one of the owners.
    pub fn record_reach(
        &mut self,
        path_col: &str,
        owner_col: &str,
        reach: &RecordReach,
    ) -> &mut Self {
        self.push("(").reach(path_col, &reach.orgs);
        if !reach.owners.is_empty() {
            self.push(" OR ").push(owner_col).push(" IN (");
            for (i, o) in reach.owners.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.arg(*o);
            }
            self.push(")");
        }
        self.push(")")
    }

    fn query(&self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text).persistent(self.cached);
        for a in &self.args {
            q = match a.clone() {
                Arg::Int(v) => q.bind(v),
                Arg::Real(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }

    pub async fn execute<'e, E: Executor<'e, Database = Any>>(&self, ex: E) -> Result<u64> {
        Ok(self.query().execute(ex).await?.rows_affected())
    }

    pub async fn fetch_all<'e, T, E>(&self, ex: E) -> Result<Vec<T>>
    where
        E: Executor<'e, Database = Any>,
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let rows = self.query().fetch_all(ex).await?;
        Ok(rows.iter().map(T::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn fetch_optional<'e, T, E>(&self, ex: E) -> Result<Option<T>>
    where
        E: Executor<'e, Database = Any>,
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        match self.query().fetch_optional(ex).await? {
            Some(row) => Ok(Some(T::from_row(&row)?)),
            None => Ok(None),
        }
    }

    pub async fn fetch_one<'e, T, E>(&self, ex: E) -> Result<T>
    where
        E: Executor<'e, Database = Any>,
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        self.fetch_optional(ex)
            .await?
            .ok_or(crate::StoreError::NotFound)
    }

    /// The first column of the first row as i64, e.g. an `INSERT … RETURNING id` or a `COUNT(*)`.
    pub async fn fetch_i64<'e, E: Executor<'e, Database = Any>>(&self, ex: E) -> Result<i64> {
        use sqlx::Row;
        let row = self.query().fetch_one(ex).await?;
        Ok(row.try_get::<i64, _>(0)?)
    }
}

/// Settings SQLite takes only before it initialises, that is before the first connection of the
/// process:
/// - memory statistics off (`SQLITE_CONFIG_MEMSTATUS`, on by default): keping never reads those
///   counts, and they take one process-wide mutex twice per allocation on every connection, a few
///   per cent of each statement;
/// - mimalloc as SQLite's allocator, as it is the rest of keping's: with glibc's malloc, a large
///   write (a grading run, an import) spent a seventh of SQLite's time allocating and freeing
///   parse trees and cache pages.
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with MEMSTATUS takes one int and with MALLOC a pointer to the
        // methods, which SQLite copies before answering; the methods are mimalloc's own, which
        // are thread-safe and answer what SQLite asks of them (a size of at least the one asked
        // for). Before initialisation sqlite3_config only sets what it is given, and afterwards it
        // refuses with SQLITE_MISUSE and changes nothing.
        let answer = unsafe {
            let methods = libsqlite3_sys::sqlite3_mem_methods {
                xMalloc: Some(sqlite_malloc),
                xFree: Some(sqlite_free),
                xRealloc: Some(sqlite_realloc),
                xSize: Some(sqlite_size),
                xRoundup: Some(sqlite_roundup),
                xInit: Some(sqlite_allocator_init),
                xShutdown: Some(sqlite_allocator_shutdown),
                pAppData: std::ptr::null_mut(),
            };
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MALLOC, &methods)
                | libsqlite3_sys::sqlite3_config(
                    libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                    std::ffi::c_int::from(0u8),
                )
        };
        if answer != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                answer,
                "SQLite was initialised already: its allocator and memory statistics stay"
            );
        }
    });
}

// SQLite's allocation methods on mimalloc (sizes are non-negative ints in SQLite's calls)

unsafe extern "C" fn sqlite_malloc(size: std::ffi::c_int) -> *mut std::ffi::c_void {
    unsafe { libmimalloc_sys::mi_malloc(size.max(0) as usize) }
}

unsafe extern "C" fn sqlite_free(p: *mut std::ffi::c_void) {
    unsafe { libmimalloc_sys::mi_free(p) }
}

unsafe extern "C" fn sqlite_realloc(
    p: *mut std::ffi::c_void,
    size: std::ffi::c_int,
) -> *mut std::ffi::c_void {
    unsafe { libmimalloc_sys::mi_realloc(p, size.max(0) as usize) }
}

unsafe extern "C" fn sqlite_size(p: *mut std::ffi::c_void) -> std::ffi::c_int {
    let size = unsafe { libmimalloc_sys::mi_usable_size(p) };
    std::ffi::c_int::try_from(size).unwrap_or(std::ffi::c_int::MAX)
}

unsafe extern "C" fn sqlite_roundup(size: std::ffi::c_int) -> std::ffi::c_int {
    let size = unsafe { libmimalloc_sys::mi_good_size(size.max(0) as usize) };
    std::ffi::c_int::try_from(size).unwrap_or(std::ffi::c_int::MAX)
}

unsafe extern "C" fn sqlite_allocator_init(_: *mut std::ffi::c_void) -> std::ffi::c_int {
    libsqlite3_sys::SQLITE_OK
}

unsafe extern "C" fn sqlite_allocator_shutdown(_: *mut std::ffi::c_void) {}

#[cfg(test)]
mod tests {
    use super::*;
    use keping_domain::org::OrgPath;

    #[test]
    fn quoted_texts_double_their_quotes() {
        for (text, quoted) in [
            ("", "''"),
            ("张三", "'张三'"),
            ("O'Brien", "'O''Brien'"),
            ("''", "''''''"),
            ("a'b'c'", "'a''b''c'''"),
        ] {
            let mut out = String::from("x");
            push_quoted(&mut out, text);
            assert_eq!(out, format!("x{quoted}"));
        }
    }

    #[test]
    fn reach_sql_numbers_parameters() {
        let root = OrgPath::root(1);
        let mut sql = Sql::new("SELECT 1 FROM orgs WHERE id = ");
        sql.arg(5).push(" AND ").reach(
            "path",
            &Reach::Some {
                subtrees: vec![root.child(2)],
                nodes: vec![root.child(3)],
            },
        );
        assert_eq!(
            sql.text,
            "SELECT 1 FROM orgs WHERE id = $1 AND ((path >= $2 AND path < $3) OR path = $4)"
        );
        assert_eq!(sql.args.len(), 4);
        let mut owned = Sql::new("");
        owned.record_reach(
            "o.path",
            "c.owner_id",
            &RecordReach {
                orgs: Reach::Nothing,
                owners: vec![7, 8],
            },
        );
        assert_eq!(owned.text, "(1=0 OR c.owner_id IN ($1, $2))");
    }

    #[test]
    fn sqlite_file_from_url() {
        assert_eq!(
            sqlite_file("sqlite://data/keping.db").as_deref(),
            Some("data/keping.db")
        );
        assert_eq!(
            sqlite_file("sqlite:data/k.db?mode=rwc").as_deref(),
            Some("data/k.db")
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }
}
