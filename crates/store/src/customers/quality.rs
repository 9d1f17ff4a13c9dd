//! Data quality (有效客户判断标准): each org's completeness rules (inherited down the tree), the
//! score of one customer, and the report per rep and per org over the customers the caller sees.

use super::{org_within, reachable, require};
use crate::audit::{self, Changes, Entry};
use crate::{settings, Db, Result, Sql};
use keping_domain::customer_quality::{self as q, Assessment, QualityContact, QualityInput};
use keping_domain::org::OrgPath;
use keping_domain::scope::Scope;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;

pub use keping_domain::customer_quality::QualityRules;

const QUALITY_RULES: &str = "customer_quality";

/// The rules in force at an org (its own, an ancestor's, or the defaults).
pub async fn rules(db: &Db, scope: &Scope, org_id: i64) -> Result<QualityRules> {
    require(scope, "customer.view")?;
    let mut tx = db.read().await?;
    let path = org_within(&mut tx, scope, "customer.view", org_id).await?;
    let r = settings::nearest(&mut *tx, &path, QUALITY_RULES)
        .await?
        .map(|(_, r)| r)
        .unwrap_or_default();
    tx.commit().await?;
    Ok(r)
}

pub async fn put_rules(
    db: &Db,
    scope: &Scope,
    org_id: i64,
    mut rules: QualityRules,
) -> Result<QualityRules> {
    require(scope, "settings.manage")?;
    rules.validate()?;
    let mut tx = db.begin().await?;
    let path = org_within(&mut tx, scope, "settings.manage", org_id).await?;
    let before: QualityRules = settings::nearest(&mut *tx, &path, QUALITY_RULES)
        .await?
        .map(|(_, r)| r)
        .unwrap_or_default();
    settings::put(&mut tx, org_id, QUALITY_RULES, &rules).await?;
    let mut changes = Changes::new();
    changes.field("quality_rules", &before, &rules);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action: "update",
            entity: "quality_rules",
            entity_id: Some(org_id),
            summary: String::new(),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(rules)
}

/// The columns the rules read, after `c.id, c.org_id, o.path, o.name, c.owner_id, u.name`.
const FIELDS: [&str; 10] = [
    "company",
    "phone",
    "email",
    "address",
    "region",
    "industry",
    "source",
    "customer_group",
    "importance",
    "intent",
];

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    org_id: i64,
    org_path: String,
    org_name: String,
    owner_id: Option<i64>,
    owner_name: Option<String>,
    company: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    region: Option<String>,
    industry: Option<String>,
    source: Option<String>,
    customer_group: Option<String>,
    importance: Option<String>,
    intent: Option<String>,
}

type ContactRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl Row {
    fn input(&self, contacts: Vec<QualityContact>) -> QualityInput {
        let values = [
            &self.company,
            &self.phone,
            &self.email,
            &self.address,
            &self.region,
            &self.industry,
            &self.source,
            &self.customer_group,
            &self.importance,
            &self.intent,
        ];
        QualityInput {
            fields: FIELDS
                .iter()
                .copied()
                .zip(values.into_iter().cloned())
                .collect(),
            phone: self.phone.clone(),
            contacts,
        }
    }
}

fn select() -> String {
    format!(
        "SELECT c.id, c.org_id, o.path AS org_path, o.name AS org_name, c.owner_id, u.name AS owner_name, {} \
         FROM customers c JOIN orgs o ON o.id = c.org_id LEFT JOIN users u ON u.id = c.owner_id WHERE ",
        FIELDS.map(|f| format!("c.{f}")).join(", ")
    )
}

/// Assessments of `rows` under the rules of each one's org (`cache` keeps the rules by org).
async fn assess_rows(
    conn: &mut sqlx::AnyConnection,
    rows: &[Row],
    cache: &mut HashMap<i64, QualityRules>,
) -> Result<Vec<Assessment>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut sql = Sql::new(
        "SELECT customer_id, name, department, title, phone, mobile, email FROM contacts WHERE ",
    );
    sql.in_ids("customer_id", &ids).push(" ORDER BY id");
    let contacts: Vec<ContactRow> = sql.fetch_all(&mut *conn).await?;
    let mut by_customer: HashMap<i64, Vec<QualityContact>> = HashMap::new();
    for (cid, name, department, title, phone, mobile, email) in contacts {
        by_customer.entry(cid).or_default().push(QualityContact {
            name,
            department,
            title,
            phone,
            mobile,
            email,
        });
    }
    let missing: Vec<(i64, OrgPath)> = rows
        .iter()
        .filter(|r| !cache.contains_key(&r.org_id))
        .map(|r| {
            (
                r.org_id,
                OrgPath::parse(&r.org_path).expect("stored org paths are well formed"),
            )
        })
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        let paths: Vec<OrgPath> = missing.iter().map(|(_, p)| p.clone()).collect();
        let found: Vec<Option<(i64, QualityRules)>> =
            settings::nearest_each(&mut *conn, &paths, QUALITY_RULES).await?;
        for ((org, _), r) in missing.into_iter().zip(found) {
            cache.insert(org, r.map(|(_, r)| r).unwrap_or_default());
        }
    }
    Ok(rows
        .iter()
        .map(|r| {
            let input = r.input(by_customer.remove(&r.id).unwrap_or_default());
            q::assess(&cache[&r.org_id], &input)
        })
        .collect())
}

/// One customer's score under its org's rules; 404 outside the caller's scope.
pub async fn customer(db: &Db, scope: &Scope, id: i64) -> Result<Assessment> {
    require(scope, "customer.view")?;
    let mut sql = Sql::new(&select());
    sql.push("c.id = ").arg(id).push(" AND ");
    reachable(&mut sql, scope, "customer.view");
    let mut conn = db.pool.acquire().await?;
    let row: Row = sql.fetch_one(&mut *conn).await?;
    let mut cache = HashMap::new();
    Ok(
        assess_rows(&mut conn, std::slice::from_ref(&row), &mut cache)
            .await?
            .remove(0),
    )
}

/// A line of the report: a rep (or the pool), or an org.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QualityLine {
    /// The rep's or the org's id; None for the public pool's line.
    pub id: Option<i64>,
    pub name: Option<String>,
    pub customers: u64,
    /// The mean score, to one decimal.
    pub average_score: f64,
    /// Customers that pass every check.
    pub complete: u64,
    /// Failed checks (`missing.<field>`, `phone_area_code`, `department_head`, `min_contacts`) → customers.
    pub failures: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QualityReport {
    pub total: QualityLine,
    /// Per owner rep, weakest average first; the pool (owner none) is one line.
    pub by_rep: Vec<QualityLine>,
    /// Per org the customers belong to, weakest average first.
    pub by_org: Vec<QualityLine>,
}

#[derive(Default)]
struct Tally {
    name: Option<String>,
    customers: u64,
    score_sum: u64,
    complete: u64,
    failures: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, a: &Assessment) {
        self.customers += 1;
        self.score_sum += u64::from(a.score);
        if a.failed.is_empty() {
            self.complete += 1;
        }
        for f in &a.failed {
            *self.failures.entry(f.clone()).or_default() += 1;
        }
    }

    fn line(self, id: Option<i64>) -> QualityLine {
        let average = if self.customers == 0 {
            0.0
        } else {
            (self.score_sum as f64 * 10.0 / self.customers as f64).round() / 10.0
        };
        QualityLine {
            id,
            name: self.name,
            customers: self.customers,
            average_score: average,
            complete: self.complete,
            failures: self.failures,
        }
    }
}

/// The report over every customer the caller sees (within `org_id`'s subtree when given).
pub async fn report(db: &Db, scope: &Scope, org_id: Option<i64>) -> Result<QualityReport> {
    require(scope, "customer.view")?;
    let mut total = Tally::default();
    let mut reps: HashMap<Option<i64>, Tally> = HashMap::new();
    let mut orgs: HashMap<i64, Tally> = HashMap::new();
    let mut cache: HashMap<i64, QualityRules> = HashMap::new();
    let mut after = 0i64;
    let mut conn = db.pool.acquire().await?;
    loop {
        let mut sql = Sql::new(&select());
        sql.push("c.id > ").arg(after).push(" AND ");
        reachable(&mut sql, scope, "customer.view");
        if let Some(o) = org_id {
            crate::db::only_under(
                db,
                &mut sql,
                &scope.reach_any(&["customer.view", "org.view"]),
                o,
            )
            .await?;
        }
        sql.push(" ORDER BY c.id LIMIT 1000");
        let rows: Vec<Row> = sql.fetch_all(&mut *conn).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let assessed = assess_rows(&mut conn, &rows, &mut cache).await?;
        for (r, a) in rows.iter().zip(&assessed) {
            total.add(a);
            let rep = reps.entry(r.owner_id).or_default();
            if rep.name.is_none() {
                rep.name = r.owner_name.clone();
            }
            rep.add(a);
            let org = orgs.entry(r.org_id).or_default();
            if org.name.is_none() {
                org.name = Some(r.org_name.clone());
            }
            org.add(a);
        }
        if rows.len() < 1000 {
            break;
        }
    }
    let order = |a: &QualityLine, b: &QualityLine| {
        a.average_score
            .total_cmp(&b.average_score)
            .then_with(|| a.name.cmp(&b.name))
    };
    let mut by_rep: Vec<QualityLine> = reps.into_iter().map(|(id, t)| t.line(id)).collect();
    by_rep.sort_by(order);
    let mut by_org: Vec<QualityLine> = orgs.into_iter().map(|(id, t)| t.line(Some(id))).collect();
    by_org.sort_by(order);
    Ok(QualityReport {
        total: total.line(None),
        by_rep,
        by_org,
    })
}

/// The report as an xlsx workbook: a sheet per rep and one per org.
pub fn report_xlsx(report: &QualityReport, zh: bool) -> Result<Vec<u8>> {
    let xlsx = |e: rust_xlsxwriter::XlsxError| {
        crate::StoreError::Database(sqlx::Error::Protocol(format!("xlsx: {e}")))
    };
    let mut checks: Vec<&String> = report.total.failures.keys().collect();
    checks.sort();
    let mut book = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (title, who, lines) in [
        (
            if zh { "按业务员" } else { "By rep" },
            if zh { "业务员" } else { "Rep" },
            &report.by_rep,
        ),
        (
            if zh { "按机构" } else { "By org" },
            if zh { "机构" } else { "Org" },
            &report.by_org,
        ),
    ] {
        let sheet = book.add_worksheet();
        sheet.set_name(title).map_err(xlsx)?;
        let mut headers: Vec<String> = vec![
            who.to_string(),
            (if zh { "客户数" } else { "Customers" }).into(),
            (if zh { "平均得分" } else { "Average score" }).into(),
            (if zh { "完整客户数" } else { "Complete" }).into(),
        ];
        headers.extend(checks.iter().map(|c| check_label(c, zh)));
        for (i, h) in headers.iter().enumerate() {
            sheet
                .write_string_with_format(0, i as u16, h, &bold)
                .map_err(xlsx)?;
        }
        for (r, l) in lines.iter().chain([&report.total]).enumerate() {
            let row = (r + 1) as u32;
            let name = match (&l.name, l.id, std::ptr::eq(l, &report.total)) {
                (_, _, true) => (if zh { "合计" } else { "Total" }).to_string(),
                (Some(n), _, _) => n.clone(),
                (None, None, _) => (if zh { "公海" } else { "Public pool" }).to_string(),
                (None, Some(id), _) => format!("#{id}"),
            };
            sheet.write_string(row, 0, name).map_err(xlsx)?;
            sheet
                .write_number(row, 1, l.customers as f64)
                .map_err(xlsx)?;
            sheet.write_number(row, 2, l.average_score).map_err(xlsx)?;
            sheet
                .write_number(row, 3, l.complete as f64)
                .map_err(xlsx)?;
            for (j, c) in checks.iter().enumerate() {
                let n = l.failures.get(*c).copied().unwrap_or(0);
                sheet
                    .write_number(row, (4 + j) as u16, n as f64)
                    .map_err(xlsx)?;
            }
        }
    }
    book.save_to_buffer().map_err(xlsx)
}

/// A field a rule may require, named for people.
pub fn field_name(field: &str, zh: bool) -> String {
    let (z, e) = match field {
        "company" => ("单位名称", "company"),
        "phone" => ("电话", "phone"),
        "email" => ("邮箱", "e-mail"),
        "address" => ("地址", "address"),
        "region" => ("地区", "region"),
        "industry" => ("行业", "industry"),
        "source" => ("客户来源", "source"),
        "customer_group" => ("客户组", "customer group"),
        "importance" => ("重要程度", "importance"),
        "intent" => ("意向等级", "purchase intent"),
        other => (other, other),
    };
    (if zh { z } else { e }).to_string()
}

/// A failed check's name for people.
pub fn check_label(code: &str, zh: bool) -> String {
    if let Some(field) = code.strip_prefix("missing.") {
        let name = field_name(field, zh);
        return if zh {
            format!("缺{name}")
        } else {
            format!("No {name}")
        };
    }
    match (code, zh) {
        ("phone_area_code", true) => "固话缺区号".into(),
        ("phone_area_code", false) => "Landline without area code".into(),
        ("department_head", true) => "缺完整的部门负责人".into(),
        ("department_head", false) => "No department head with full details".into(),
        ("min_contacts", true) => "联系人不足".into(),
        ("min_contacts", false) => "Too few contacts".into(),
        (other, _) => other.to_string(),
    }
}
