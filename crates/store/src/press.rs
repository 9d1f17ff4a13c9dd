//! Presses (按键): each recorded exactly once per idempotency key, with the rule that decided it.
//!
//! One writer task per instance records the presses waiting at that moment in one transaction
//! (group commit): a commit costs about the same for one press as for two hundred, so under load
//! the batches grow instead of the queue. Each statement serves the whole batch; presses in one
//! batch see each other's ratings through [`Overlay`], exactly as if they had been written one by
//! one. A press is answered only after its batch committed, so a 2xx answer means it is stored.

use crate::db::push_quoted;
use crate::evaluation::{mask_phone, settings_for_each, Device};
use crate::{Backend, Db, Result, Sql, StoreError};
use keping_domain::auth::secret_digest;
use keping_domain::evaluation::{
    self as rules, Decision, EvaluationSettings, PressTarget, PressTime, PromptState, RatingOption,
};
use keping_domain::notify::{Channel, NegativeAlert};
use keping_domain::org::OrgPath;
use keping_domain::stats::local_parts;
use keping_domain::validate::{self, Invalid};
use keping_domain::{now_millis, Millis};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Transaction};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

/// Most presses in one transaction: keeps every statement's parameters far below both backends' limits.
const MAX_BATCH: usize = 256;

pub struct PressInput {
    pub target: PressTarget,
    pub key: String,
    pub idempotency_key: String,
    pub pressed_at: Millis,
    pub sent_at: Option<Millis>,
    pub phone: Option<String>,
    pub negative_reason: Option<String>,
}

impl PressInput {
    /// What makes two uploads "the same press": the body, not the moment it was sent.
    fn digest(&self) -> String {
        secret_digest(&format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.key,
            self.pressed_at,
            self.phone.as_deref().unwrap_or(""),
            self.negative_reason.as_deref().unwrap_or("")
        ))
    }

    /// Checks what needs no database, so a bad press never waits for a batch.
    fn check(mut self) -> Result<PressInput> {
        self.idempotency_key =
            validate::required_text("idempotency_key", &self.idempotency_key, 100)?;
        self.phone = match self
            .phone
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            Some(p)
                if p.len() <= 20
                    && p.chars()
                        .all(|c| c.is_ascii_digit() || c == '-' || c == '+')
                    && p.chars().filter(char::is_ascii_digit).count() >= 7 =>
            {
                Some(p.to_string())
            }
            Some(p) => {
                return Err(Invalid::new(
                    "phone",
                    "invalid_phone",
                    format!("'{p}' is not a phone number"),
                )
                .into())
            }
            None => None,
        };
        self.negative_reason =
            validate::optional_text("negative_reason", self.negative_reason.as_deref(), 20)?;
        Ok(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PressOutcome {
    pub press_id: i64,
    pub counted: bool,
    /// null when counted; else already_rated, duplicate_interval, no_prompt, no_service (a QR
    /// press with nothing to rate) or too_old
    pub reason: Option<String>,
    pub rating_id: Option<i64>,
    #[serde(skip)]
    pub replay: bool,
    /// Set when this press made a negative rating: the follow-up it opened.
    #[serde(skip)]
    pub follow_up_id: Option<i64>,
    /// How many alerts this press queued in the outbox.
    #[serde(skip)]
    pub alerts_queued: usize,
    #[serde(skip)]
    pub polarity: Option<String>,
}

impl StoredPress {
    /// The answer a stored press gave, as its replay gives it again.
    fn outcome(&self) -> PressOutcome {
        PressOutcome {
            press_id: self.id,
            counted: self.counted != 0,
            reason: self.reason.clone(),
            rating_id: self.rating_id,
            replay: true,
            follow_up_id: None,
            polarity: None,
            alerts_queued: 0,
        }
    }
}

impl PressOutcome {
    fn replayed(&self) -> PressOutcome {
        PressOutcome {
            replay: true,
            follow_up_id: None,
            alerts_queued: 0,
            polarity: None,
            ..self.clone()
        }
    }
}

/// A press on its way to the writer.
struct Request {
    device: Device,
    input: PressInput,
    digest: String,
    received_at: Millis,
}

struct Job {
    request: Request,
    reply: oneshot::Sender<Result<PressOutcome>>,
}

/// The instance's press writer. Cloning shares it.
#[derive(Clone)]
pub struct Presses {
    queue: mpsc::Sender<Job>,
}

impl Presses {
    /// Starts the writer; it ends when the last handle is dropped, after the presses queued.
    ///
    /// The writer has a thread and runtime of its own: on the server's runtime, each of a batch's
    /// dozen statements woke it behind hundreds of request tasks, and that queueing was a large
    /// part of a batch's time, which every press of the next batch waits for.
    pub fn start(db: Db) -> Presses {
        let (queue, jobs) = mpsc::channel(8 * MAX_BATCH);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the press writer");
        std::thread::Builder::new()
            .name("press-writer".into())
            .spawn(move || runtime.block_on(writer(db, jobs)))
            .expect("a thread for the press writer");
        Presses { queue }
    }

    /// Records a press exactly once per idempotency key and decides whether it counts.
    pub async fn press(&self, device: &Device, input: PressInput) -> Result<PressOutcome> {
        let received_at = now_millis();
        let input = input.check()?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request: Request {
                device: device.clone(),
                digest: input.digest(),
                input,
                received_at,
            },
            reply,
        };
        let gone =
            || StoreError::Database(sqlx::Error::Protocol("the press writer has stopped".into()));
        self.queue.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn writer(db: Db, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut held = None;
    // outlets whose pending roll-up additions are still to fold in this round, a group at a time
    let mut folds: Vec<Vec<i64>> = Vec::new();
    let mut next_round = tokio::time::Instant::now() + FOLD_EVERY;
    loop {
        if folds.is_empty() {
            tokio::select! {
                n = queue.recv_many(&mut jobs, MAX_BATCH) => if n == 0 { break },
                _ = tokio::time::sleep_until(next_round) => {}
            }
        } else {
            // while folding, the presses waiting go before each group
            while jobs.len() < MAX_BATCH {
                let Ok(job) = queue.try_recv() else { break };
                jobs.push(job);
            }
        }
        if !jobs.is_empty() {
            record_batch(&db, &mut held, &mut jobs).await;
        }
        if folds.is_empty() && tokio::time::Instant::now() >= next_round {
            next_round = tokio::time::Instant::now() + FOLD_EVERY;
            match crate::stats::fold_plan(&db).await {
                Ok(plan) => folds = plan,
                Err(e) => tracing::warn!(error = %e, "cannot read the pending roll-ups"),
            }
        }
        if let Some(orgs) = folds.pop() {
            let started = std::time::Instant::now();
            match fold_held(&db, &mut held, &orgs).await {
                Ok(()) => tracing::debug!(
                    outlets = orgs.len(),
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "roll-ups folded"
                ),
                // rolled back: the rows stay pending for the next round
                Err(e) => tracing::warn!(error = %e, "roll-up fold failed"),
            }
        }
    }
}

/// How often the writer folds the pending roll-up additions (see [`crate::stats::fold_orgs`]): a
/// cell gathers a few seconds of presses before it is written, instead of being written by every
/// batch. At 8,000 presses/s a fold of 1,000 rows took 17 ms every second and 13 ms every 3 s.
const FOLD_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// One group's fold (see [`crate::stats::fold_orgs`]) in a transaction of its own, on the
/// writer's own connection.
async fn fold_held(db: &Db, held: &mut Option<PoolConnection<Any>>, orgs: &[i64]) -> Result<()> {
    let conn = writer_connection(db, held).await?;
    let folded = async {
        let mut tx = db.begin_on(conn).await?;
        crate::stats::fold_orgs(&mut tx, db.backend, orgs).await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    if folded.is_err() {
        *held = None;
    }
    folded
}

/// The writer's own connection, taken from the pool when it has none.
async fn writer_connection<'h>(
    db: &Db,
    held: &'h mut Option<PoolConnection<Any>>,
) -> Result<&'h mut PoolConnection<Any>> {
    if held.is_none() {
        *held = Some(db.pool.acquire().await?);
    }
    Ok(held.as_mut().expect("just taken"))
}

/// Records the presses in `jobs` (emptied) and answers each.
async fn record_batch(db: &Db, held: &mut Option<PoolConnection<Any>>, jobs: &mut Vec<Job>) {
    let (requests, replies): (Vec<Request>, Vec<_>) =
        jobs.drain(..).map(|j| (j.request, j.reply)).unzip();
    let started = std::time::Instant::now();
    let recorded = record_held(db, held, &requests).await;
    tracing::debug!(
        presses = requests.len(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        "press batch"
    );
    match recorded {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        // One bad press must not fail its neighbours: each goes again alone, and only its
        // own failure reaches it.
        Err(e) if requests.len() > 1 => {
            tracing::warn!(error = %e, presses = requests.len(), "press batch failed; recording one by one");
            for (request, reply) in requests.into_iter().zip(replies) {
                let one = record_held(db, held, std::slice::from_ref(&request)).await;
                let outcome = match one {
                    Ok(mut one) => one.pop().expect("one outcome per press"),
                    Err(e) => Err(e),
                };
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// Where each press of a batch stands once the database has been read.
enum Plan {
    /// Answered without writing: a replay, a replay of an earlier press in this batch, or an error.
    Done(Result<PressOutcome>),
    ReplayOf(usize),
    New(NewPress),
}

struct NewPress {
    effective_at: Option<Millis>,
    decision: Decision,
    option: RatingOption,
    staff_id: Option<i64>,
    press_id: i64,
    rating_id: Option<i64>,
    /// The follow-up a negative rating opened, and how many alerts it queued.
    follow_up: Option<(i64, usize)>,
}

/// Ratings made earlier in the same batch, which the database does not show yet.
#[derive(Default)]
struct Overlay {
    rated_services: HashSet<i64>,
    bare_ratings: HashMap<i64, Vec<Millis>>,
}

#[derive(sqlx::FromRow)]
struct StoredPress {
    terminal_id: i64,
    idempotency_key: String,
    id: i64,
    body_digest: String,
    counted: i64,
    reason: Option<String>,
    rating_id: Option<i64>,
}

/// [`record`] on the writer's own connection, kept from batch to batch: SQLite empties a
/// connection's page cache whenever another connection has written since its last transaction,
/// and the pool hands its connections out in turn, so every batch started with a cold cache.
/// A batch that fails lets its connection go (it may be broken); the next one takes another.
async fn record_held(
    db: &Db,
    held: &mut Option<PoolConnection<Any>>,
    requests: &[Request],
) -> Result<Vec<Result<PressOutcome>>> {
    let conn = writer_connection(db, held).await?;
    let recorded = record(db, conn, requests).await;
    if recorded.is_err() {
        *held = None;
    }
    recorded
}

/// Records a batch in one transaction. The outer error means nothing was written.
async fn record(
    db: &Db,
    conn: &mut AnyConnection,
    requests: &[Request],
) -> Result<Vec<Result<PressOutcome>>> {
    let mut tx = db.begin_on(conn).await?;
    if db.backend == Backend::Postgres {
        // one window's presses, Starts and Ends are serialised across connections and instances;
        // in id order, so two batches never wait for each other in a circle
        let mut windows: Vec<i64> = requests.iter().map(|r| r.device.window_id).collect();
        windows.sort_unstable();
        windows.dedup();
        Sql::bulk(db.backend, "SELECT id FROM windows WHERE ")
            .in_ids("id", &windows)
            .push(" ORDER BY id FOR UPDATE")
            .fetch_all::<(i64,), _>(&mut *tx)
            .await?;
    }
    let stored = stored_presses(&mut tx, db.backend, requests).await?;
    let (paths, parsed) = distinct_paths(requests.iter().map(|r| &r.device));
    let settings: HashMap<&str, EvaluationSettings> = paths
        .into_iter()
        .zip(settings_for_each(&mut *tx, &parsed).await?)
        .collect();
    let settings_of = |r: &Request| &settings[r.device.org_path.as_str()];

    // first pass: replays, unknown keys and the moment each press counts at
    let mut plans = Vec::with_capacity(requests.len());
    let mut first_in_batch: HashMap<(i64, &str), usize> = HashMap::new();
    let mut asks = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let idem = (r.device.terminal_id, r.input.idempotency_key.as_str());
        let plan = if let Some(p) = stored.get(&(idem.0, idem.1.to_string())) {
            Plan::Done(if p.body_digest == r.digest {
                Ok(p.outcome())
            } else {
                Err(idempotency_conflict())
            })
        } else if let Some(&first) = first_in_batch.get(&idem) {
            if requests[first].digest == r.digest {
                Plan::ReplayOf(first)
            } else {
                Plan::Done(Err(idempotency_conflict()))
            }
        } else {
            match option_for(settings_of(r), &r.input.key) {
                Err(e) => Plan::Done(Err(e)),
                Ok(option) => {
                    first_in_batch.insert(idem, i);
                    let effective_at = match rules::effective_time(
                        r.input.pressed_at,
                        r.input.sent_at,
                        r.received_at,
                    ) {
                        PressTime::TooOld => None,
                        PressTime::At(t) => {
                            let interval = settings_of(r).press_interval_seconds * 1000;
                            asks.push((i, r.device.window_id, t, interval));
                            Some(t)
                        }
                    };
                    Plan::New(NewPress {
                        effective_at,
                        decision: Decision::Keep("too_old"),
                        option,
                        staff_id: None,
                        press_id: 0,
                        rating_id: None,
                        follow_up: None,
                    })
                }
            }
        };
        plans.push(plan);
    }

    // second pass, in arrival order: the rules, each press seeing the batch's earlier ratings
    let mut windows = windows_at(&mut tx, db.backend, &asks).await?;
    let mut overlay = Overlay::default();
    for (i, r) in requests.iter().enumerate() {
        let Some(t) = plans_time(&plans[i]) else {
            continue;
        };
        let Plan::New(p) = &mut plans[i] else {
            continue;
        };
        let at = windows
            .remove(&i)
            .expect("every timed press was asked about");
        let s = settings_of(r);
        let state = at.prompt_state(r.device.window_id, t, s, &overlay);
        p.decision = rules::decide(&state, s, r.input.target);
        if let Decision::Count(service) = p.decision {
            match service {
                Some(id) => {
                    overlay.rated_services.insert(id);
                    p.staff_id = at.service_staff;
                }
                None => {
                    overlay
                        .bare_ratings
                        .entry(r.device.window_id)
                        .or_default()
                        .push(t);
                    p.staff_id = at.duty_staff;
                }
            }
        }
    }

    let new: Vec<usize> = (0..requests.len())
        .filter(|&i| matches!(plans[i], Plan::New(_)))
        .collect();
    if !new.is_empty() {
        insert_presses(&mut tx, db.backend, requests, &mut plans, &new).await?;
        insert_ratings(&mut tx, db.backend, requests, &mut plans, &new).await?;
        open_follow_ups(&mut tx, db.backend, requests, &mut plans, &new).await?;
        rollup(requests, &plans, &new)
            .write(&mut tx, db.backend)
            .await?;
    }
    let mut terminals: Vec<i64> = requests.iter().map(|r| r.device.terminal_id).collect();
    terminals.sort_unstable();
    terminals.dedup();
    Sql::bulk(db.backend, "UPDATE terminals SET last_seen_at = ")
        .arg(now_millis())
        .push(" WHERE ")
        .in_ids("id", &terminals)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let mut outcomes: Vec<Option<Result<PressOutcome>>> = Vec::with_capacity(plans.len());
    for plan in plans {
        outcomes.push(Some(match plan {
            Plan::Done(result) => result,
            Plan::New(p) => Ok(p.outcome()),
            Plan::ReplayOf(first) => match &outcomes[first] {
                Some(Ok(o)) => Ok(o.replayed()),
                _ => unreachable!("a press is replayed only of a new press before it"),
            },
        }));
    }
    Ok(outcomes.into_iter().map(|o| o.expect("filled")).collect())
}

/// The distinct org paths of `devices`, as stored and parsed, for settings read in one query.
fn distinct_paths<'a>(devices: impl Iterator<Item = &'a Device>) -> (Vec<&'a str>, Vec<OrgPath>) {
    let mut devices: Vec<&Device> = devices.collect();
    devices.sort_unstable_by_key(|d| d.org_path.as_str());
    devices.dedup_by_key(|d| d.org_path.as_str());
    devices
        .into_iter()
        .map(|d| (d.org_path.as_str(), d.path()))
        .unzip()
}

/// The batch's additions to the statistics roll-ups, written in its transaction.
fn rollup(requests: &[Request], plans: &[Plan], new: &[usize]) -> crate::stats::Rollup {
    let mut rollup = crate::stats::Rollup::default();
    for &i in new {
        let (r, Plan::New(p)) = (&requests[i], &plans[i]) else {
            continue;
        };
        let d = &r.device;
        match p.decision {
            Decision::Count(service) => rollup.rating(
                &d.timezone,
                p.effective_at.unwrap_or(r.received_at),
                d.org_id,
                d.window_id,
                p.staff_id,
                d.business_type_id,
                &p.option.key,
                p.option.polarity.code(),
                service.is_some(),
            ),
            Decision::Keep(reason) => rollup.removed(
                &d.timezone,
                p.effective_at.unwrap_or(r.received_at),
                d.org_id,
                d.window_id,
                reason,
            ),
        }
    }
    rollup
}

fn plans_time(plan: &Plan) -> Option<Millis> {
    match plan {
        Plan::New(p) => p.effective_at,
        _ => None,
    }
}

impl NewPress {
    fn counted(&self) -> bool {
        matches!(self.decision, Decision::Count(_))
    }

    fn negative(&self) -> bool {
        self.counted() && self.option.polarity == rules::Polarity::Negative
    }

    fn outcome(&self) -> PressOutcome {
        PressOutcome {
            press_id: self.press_id,
            counted: self.counted(),
            reason: match self.decision {
                Decision::Keep(r) => Some(r.to_string()),
                Decision::Count(_) => None,
            },
            rating_id: self.rating_id,
            replay: false,
            follow_up_id: self.follow_up.map(|(id, _)| id),
            alerts_queued: self.follow_up.map_or(0, |(_, queued)| queued),
            polarity: self
                .counted()
                .then(|| self.option.polarity.code().to_string()),
        }
    }
}

fn idempotency_conflict() -> StoreError {
    StoreError::conflict(
        "idempotency_key",
        "idempotency_conflict",
        "this idempotency key was used for a different press",
    )
}

fn option_for(settings: &EvaluationSettings, key: &str) -> Result<RatingOption> {
    settings.option(key).cloned().ok_or_else(|| {
        let keys: Vec<&str> = settings.options.iter().map(|o| o.key.as_str()).collect();
        Invalid::new(
            "key",
            "unknown_key",
            format!(
                "'{key}' is not a rating option here; the options are {}",
                keys.join(", ")
            ),
        )
        .into()
    })
}

async fn stored_presses(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    requests: &[Request],
) -> Result<HashMap<(i64, String), StoredPress>> {
    // a join with the asked keys, so each is one lookup in the unique index (SQLite does not use
    // the index for a row-value IN list)
    let mut sql = Sql::bulk(backend, "WITH asked (t, k) AS (VALUES ");
    for (i, r) in requests.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" })
            .arg(r.device.terminal_id)
            .push(", ")
            .arg(&r.input.idempotency_key)
            .push(")");
    }
    let rows: Vec<StoredPress> = sql
        .push(") SELECT p.terminal_id, p.idempotency_key, p.id, p.body_digest, p.counted, p.reason, p.rating_id FROM asked JOIN presses p ON p.terminal_id = asked.t AND p.idempotency_key = asked.k")
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|p| ((p.terminal_id, p.idempotency_key.clone()), p))
        .collect())
}

/// A number or NULL, written into a statement.
fn push_number(out: &mut String, n: Option<i64>) {
    match n {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("NULL"),
    }
}

/// A quoted text or NULL, written into a statement (see [`push_quoted`]).
fn push_text(out: &mut String, t: Option<&str>) {
    match t {
        Some(t) => push_quoted(out, t),
        None => out.push_str("NULL"),
    }
}

async fn insert_presses(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    requests: &[Request],
    plans: &mut [Plan],
    new: &[usize],
) -> Result<()> {
    // values written into the statement, not bound (every text here is validated: keys,
    // digests, reason codes): binding a dozen values per press through sqlx's `Any` cost more
    // than inserting them
    let mut text = String::with_capacity(200 * new.len() + 256);
    text.push_str("INSERT INTO presses (terminal_id, window_id, idempotency_key, body_digest, key, pressed_at, sent_at, received_at, effective_at, service_id, counted, reason) VALUES ");
    for (n, &i) in new.iter().enumerate() {
        let (r, Plan::New(p)) = (&requests[i], &plans[i]) else {
            unreachable!("only new presses are inserted")
        };
        let (service_id, reason) = match p.decision {
            Decision::Count(s) => (s, None),
            Decision::Keep(reason) => (None, Some(reason)),
        };
        text.push_str(if n == 0 { "(" } else { ", (" });
        let _ = write!(text, "{}, {}, ", r.device.terminal_id, r.device.window_id);
        push_quoted(&mut text, &r.input.idempotency_key);
        text.push_str(", ");
        push_quoted(&mut text, &r.digest);
        text.push_str(", ");
        push_quoted(&mut text, &r.input.key);
        let _ = write!(text, ", {}, ", r.input.pressed_at);
        push_number(&mut text, r.input.sent_at);
        let _ = write!(text, ", {}, ", r.received_at);
        push_number(&mut text, p.effective_at);
        text.push_str(", ");
        push_number(&mut text, service_id);
        let _ = write!(text, ", {}, ", i64::from(p.counted()));
        push_text(&mut text, reason);
        text.push(')');
    }
    let mut sql = Sql::bulk(backend, &text);
    let ids: Vec<(i64, i64, String)> = sql
        .push(" RETURNING id, terminal_id, idempotency_key")
        .fetch_all(&mut **tx)
        .await?;
    let ids: HashMap<(i64, String), i64> = ids.into_iter().map(|(id, t, k)| ((t, k), id)).collect();
    for &i in new {
        let r = &requests[i];
        if let Plan::New(p) = &mut plans[i] {
            p.press_id = ids[&(r.device.terminal_id, r.input.idempotency_key.clone())];
        }
    }
    Ok(())
}

async fn insert_ratings(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    requests: &[Request],
    plans: &mut [Plan],
    new: &[usize],
) -> Result<()> {
    let counted: Vec<usize> = new
        .iter()
        .copied()
        .filter(|&i| matches!(&plans[i], Plan::New(p) if p.counted()))
        .collect();
    if counted.is_empty() {
        return Ok(());
    }
    // values written into the statement, as for the presses (labels are validated settings,
    // phone numbers and reasons validated input)
    let mut text = String::with_capacity(200 * counted.len() + 256);
    text.push_str("INSERT INTO ratings (press_id, service_id, window_id, org_id, staff_id, business_type_id, key, label, polarity, negative_reason, phone, rated_at) VALUES ");
    for (n, &i) in counted.iter().enumerate() {
        let (r, Plan::New(p)) = (&requests[i], &plans[i]) else {
            unreachable!("only new presses are rated")
        };
        let Decision::Count(service) = p.decision else {
            unreachable!("only counted presses are rated")
        };
        // reasons and phone numbers belong to negative ratings only
        let negative = p.negative();
        text.push_str(if n == 0 { "(" } else { ", (" });
        let _ = write!(text, "{}, ", p.press_id);
        push_number(&mut text, service);
        let _ = write!(text, ", {}, {}, ", r.device.window_id, r.device.org_id);
        push_number(&mut text, p.staff_id);
        text.push_str(", ");
        push_number(&mut text, r.device.business_type_id);
        text.push_str(", ");
        push_quoted(&mut text, &p.option.key);
        text.push_str(", ");
        push_quoted(&mut text, &p.option.label);
        text.push_str(", ");
        push_quoted(&mut text, p.option.polarity.code());
        text.push_str(", ");
        push_text(
            &mut text,
            r.input.negative_reason.as_deref().filter(|_| negative),
        );
        text.push_str(", ");
        push_text(&mut text, r.input.phone.as_deref().filter(|_| negative));
        text.push_str(", ");
        push_number(&mut text, p.effective_at);
        text.push(')');
    }
    let mut sql = Sql::bulk(backend, &text);
    let ids: HashMap<i64, i64> = sql
        .push(" RETURNING press_id, id")
        .fetch_all::<(i64, i64), _>(&mut **tx)
        .await?
        .into_iter()
        .collect();
    let mut presses = Sql::bulk(backend, "UPDATE presses SET rating_id = CASE id");
    let mut services = Sql::bulk(backend, "UPDATE services SET rating_id = CASE id");
    let (mut press_ids, mut service_ids) = (Vec::new(), Vec::new());
    for &i in &counted {
        let Plan::New(p) = &mut plans[i] else {
            unreachable!("only new presses are rated")
        };
        let rating_id = ids[&p.press_id];
        p.rating_id = Some(rating_id);
        presses
            .push(" WHEN ")
            .arg(p.press_id)
            .push(" THEN ")
            .arg(rating_id);
        press_ids.push(p.press_id);
        if let Decision::Count(Some(service)) = p.decision {
            services
                .push(" WHEN ")
                .arg(service)
                .push(" THEN ")
                .arg(rating_id);
            service_ids.push(service);
        }
    }
    presses
        .push(" END WHERE ")
        .in_ids("id", &press_ids)
        .execute(&mut **tx)
        .await?;
    if !service_ids.is_empty() {
        services
            .push(" END WHERE ")
            .in_ids("id", &service_ids)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Negative ratings open follow-ups for their outlets and queue their alerts, for the whole batch
/// in a handful of statements.
async fn open_follow_ups(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    requests: &[Request],
    plans: &mut [Plan],
    new: &[usize],
) -> Result<()> {
    let negatives: Vec<usize> = new
        .iter()
        .copied()
        .filter(|&i| matches!(&plans[i], Plan::New(p) if p.negative()))
        .collect();
    if negatives.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::bulk(
        backend,
        "INSERT INTO follow_ups (rating_id, org_id, window_id, staff_id, status, created_at) VALUES ",
    );
    for (n, &i) in negatives.iter().enumerate() {
        let (r, Plan::New(p)) = (&requests[i], &plans[i]) else {
            unreachable!("only new presses open follow-ups")
        };
        sql.push(if n == 0 { "(" } else { ", (" })
            .arg(p.rating_id.expect("a counted press has a rating"))
            .push(", ")
            .arg(r.device.org_id)
            .push(", ")
            .arg(r.device.window_id)
            .push(", ")
            .arg(p.staff_id)
            .push(", 'open', ")
            .arg(r.received_at)
            .push(")");
    }
    let follow_ups: HashMap<i64, i64> = sql
        .push(" RETURNING rating_id, id")
        .fetch_all::<(i64, i64), _>(&mut **tx)
        .await?
        .into_iter()
        .collect();
    let today = todays_figures(tx, backend, requests, plans, new, &negatives).await?;

    let mut staff_ids: Vec<i64> = negatives
        .iter()
        .filter_map(|&i| match &plans[i] {
            Plan::New(p) => p.staff_id,
            _ => None,
        })
        .collect();
    staff_ids.sort_unstable();
    staff_ids.dedup();
    let staff: HashMap<i64, (String, Option<String>)> = if staff_ids.is_empty() {
        HashMap::new()
    } else {
        Sql::bulk(backend, "SELECT id, name, employee_no FROM users WHERE ")
            .in_ids("id", &staff_ids)
            .fetch_all::<(i64, String, Option<String>), _>(&mut **tx)
            .await?
            .into_iter()
            .map(|(id, name, no)| (id, (name, no)))
            .collect()
    };
    let (paths, parsed) = distinct_paths(negatives.iter().map(|&i| &requests[i].device));
    let channels: HashMap<&str, Vec<Channel>> = paths
        .into_iter()
        .zip(crate::notify::alert_settings_for_each(&mut **tx, &parsed).await?)
        .map(|(path, s)| (path, s.channels))
        .collect();

    for (&i, (today_total, today_negative)) in negatives.iter().zip(today) {
        let r = &requests[i];
        let Plan::New(p) = &mut plans[i] else {
            unreachable!("only new presses open follow-ups")
        };
        let device = &r.device;
        let rating_id = p.rating_id.expect("a counted press has a rating");
        let rated_at = p.effective_at.expect("a counted press has a time");
        let person = p.staff_id.and_then(|id| staff.get(&id));
        let alert = NegativeAlert {
            rating_id,
            follow_up_id: follow_ups[&rating_id],
            outlet: device.org_name.clone(),
            window: device.window_name.clone(),
            staff: person.map(|s| s.0.clone()),
            employee_no: person.and_then(|s| s.1.clone()),
            label: p.option.label.clone(),
            negative_reason: r.input.negative_reason.clone(),
            local_time: keping_domain::org::local_time(&device.timezone, rated_at),
            rated_at: keping_domain::rfc3339(rated_at),
            today_negative,
            today_total,
            phone: r.input.phone.as_deref().map(mask_phone),
        };
        let queued = crate::notify::enqueue_negative(
            tx,
            device.org_id,
            &channels[device.org_path.as_str()],
            &alert,
        )
        .await?;
        p.follow_up = Some((alert.follow_up_id, queued));
    }
    Ok(())
}

/// For each of `negatives`, its outlet's counted ratings and negative ones on its local day, up
/// to and including itself: the day's roll-ups (folded and pending) before this batch, plus the
/// batch's own ratings in order.
async fn todays_figures(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    requests: &[Request],
    plans: &[Plan],
    new: &[usize],
    negatives: &[usize],
) -> Result<Vec<(i64, i64)>> {
    let day_of = |i: usize| -> Option<(i64, String)> {
        match &plans[i] {
            Plan::New(p) if p.counted() => {
                let d = &requests[i].device;
                let at = p.effective_at.expect("a counted press has a time");
                Some((d.org_id, local_parts(&d.timezone, at).day))
            }
            _ => None,
        }
    };
    let mut days: Vec<(i64, String)> = negatives.iter().filter_map(|&i| day_of(i)).collect();
    days.sort_unstable();
    days.dedup();
    let mut sql = Sql::bulk(backend, "WITH q (o, d) AS (VALUES ");
    for (n, (org_id, day)) in days.iter().enumerate() {
        sql.push(if n == 0 { "(" } else { ", (" })
            .arg(*org_id)
            .push(", ")
            .arg(day.as_str())
            .push(")");
    }
    let mut running: HashMap<(i64, String), (i64, i64)> = sql
        .push(
            ") SELECT q.o, q.d, \
             (SELECT CAST(COALESCE(SUM(x.ratings), 0) AS BIGINT) FROM stats_rollup x WHERE x.grain = 'od' AND x.day = q.d AND x.hour = 0 AND x.org_id = q.o) \
             + (SELECT CAST(COALESCE(SUM(x.ratings), 0) AS BIGINT) FROM stats_pending x WHERE x.org_id = q.o AND x.day = q.d), \
             (SELECT CAST(COALESCE(SUM(x.ratings), 0) AS BIGINT) FROM stats_rollup x WHERE x.grain = 'od' AND x.day = q.d AND x.hour = 0 AND x.org_id = q.o AND x.polarity = 'negative') \
             + (SELECT CAST(COALESCE(SUM(x.ratings), 0) AS BIGINT) FROM stats_pending x WHERE x.org_id = q.o AND x.day = q.d AND x.polarity = 'negative') \
             FROM q",
        )
        .fetch_all::<(i64, String, i64, i64), _>(&mut **tx)
        .await?
        .into_iter()
        .map(|(o, d, total, negative)| ((o, d), (total, negative)))
        .collect();
    let mut at_each = HashMap::new();
    for &i in new {
        let Some(day) = day_of(i) else { continue };
        let Some(figures) = running.get_mut(&day) else {
            continue;
        };
        figures.0 += 1;
        if matches!(&plans[i], Plan::New(p) if p.negative()) {
            figures.1 += 1;
            at_each.insert(i, *figures);
        }
    }
    Ok(negatives.iter().map(|i| at_each[i]).collect())
}

/// A window at one moment, as stored: its latest service ended by then, and who was on duty.
#[derive(sqlx::FromRow)]
struct WindowAt {
    ask: i64,
    service_id: Option<i64>,
    ended_at: Option<i64>,
    rating_id: Option<i64>,
    service_staff: Option<i64>,
    next_start: Option<i64>,
    bare_press_nearby: i64,
    duty_staff: Option<i64>,
}

impl WindowAt {
    /// The window's situation at `t`, counting the ratings made earlier in the same batch.
    fn prompt_state(
        &self,
        window_id: i64,
        t: Millis,
        settings: &EvaluationSettings,
        overlay: &Overlay,
    ) -> PromptState {
        let last = self.service_id.zip(self.ended_at).map(|(id, ended_at)| {
            let rated = self.rating_id.is_some() || overlay.rated_services.contains(&id);
            (id, ended_at, rated)
        });
        let recent_service = last
            .filter(|&(_, ended_at, _)| rules::qr_rating_open_at(ended_at, t))
            .map(|(id, _, rated)| (id, rated));
        let open_prompt = last
            .filter(|&(_, ended_at, _)| {
                rules::prompt_open_at(
                    ended_at,
                    self.next_start,
                    settings.rating_timeout_seconds,
                    t,
                )
            })
            .map(|(id, _, rated)| (id, rated));
        let interval = settings.press_interval_seconds * 1000;
        let bare_press_nearby = open_prompt.is_none()
            && settings.bare_presses_count
            && (self.bare_press_nearby != 0
                || overlay
                    .bare_ratings
                    .get(&window_id)
                    .is_some_and(|ts| ts.iter().any(|&b| b > t - interval && b < t + interval)));
        PromptState {
            open_prompt,
            recent_service,
            bare_press_nearby,
        }
    }
}

/// Reads, in one query, each asked window `(ask, window_id, t, press interval ms)` at its moment.
async fn windows_at(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    asks: &[(usize, i64, Millis, Millis)],
) -> Result<HashMap<usize, WindowAt>> {
    if asks.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = Sql::bulk(backend, "WITH q (ask, w, t, iv) AS (VALUES ");
    for (n, &(ask, window_id, t, interval)) in asks.iter().enumerate() {
        sql.push(if n == 0 { "(" } else { ", (" })
            .arg(ask as i64)
            .push(", ")
            .arg(window_id)
            .push(", ")
            .arg(t)
            .push(", ")
            .arg(interval)
            .push(")");
    }
    // `+r.service_id`: the planner would otherwise take ratings_service for `IS NULL` (a unique
    // index, so "one row") and walk every bare rating of every window.
    // Services at a window follow one another (Start refuses while one runs), so the one after the
    // latest ended service is the next to start, possibly in the millisecond of that End; duties
    // at a window follow one another too, so the latest started by `t` is the only candidate.
    sql.push(
        ") SELECT q.ask, s.id AS service_id, s.ended_at, s.rating_id, s.staff_id AS service_staff, \
         (SELECT n.started_at FROM services n WHERE n.window_id = q.w AND n.started_at >= s.ended_at AND n.id > s.id ORDER BY n.started_at LIMIT 1) AS next_start, \
         CASE WHEN EXISTS (SELECT 1 FROM ratings r WHERE r.window_id = q.w AND r.rated_at > q.t - q.iv AND r.rated_at < q.t + q.iv AND +r.service_id IS NULL) THEN 1 ELSE 0 END AS bare_press_nearby, \
         CASE WHEN d.ended_at IS NULL OR d.ended_at > q.t THEN d.staff_id END AS duty_staff \
         FROM q \
         LEFT JOIN services s ON s.id = (SELECT x.id FROM services x WHERE x.window_id = q.w AND x.ended_at IS NOT NULL AND x.ended_at <= q.t ORDER BY x.ended_at DESC LIMIT 1) \
         LEFT JOIN duties d ON d.id = (SELECT y.id FROM duties y WHERE y.window_id = q.w AND y.started_at <= q.t ORDER BY y.started_at DESC LIMIT 1)",
    );
    let rows: Vec<WindowAt> = sql.fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().map(|w| (w.ask as usize, w)).collect())
}

/// The window's situation at `t`, for a terminal's state.
pub(crate) async fn prompt_state(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    window_id: i64,
    t: Millis,
    settings: &EvaluationSettings,
) -> Result<PromptState> {
    let interval = settings.press_interval_seconds * 1000;
    let mut at = windows_at(tx, backend, &[(0, window_id, t, interval)]).await?;
    let at = at.remove(&0).expect("one row per ask");
    Ok(at.prompt_state(window_id, t, settings, &Overlay::default()))
}
