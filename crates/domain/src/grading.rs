//! Customer grading (客户分级 / 客户评价): scoring models as data, the scoring engine, grade bands,
//! and the classifications beside scores (ABC, business scale tiers, lifecycle categories, star
//! levels). Pure rules: inputs in, scores and their explanations out.
//!
//! A model's total is Σ weight × score / Σ weight on the model's scale; each breakdown line's
//! `weighted` is weight × score / Σ weight, so the lines add up to the total.

use crate::Invalid;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

// ---------------------------------------------------------------- periods

/// A grading period: a calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

impl Period {
    pub fn parse(field: &str, s: &str) -> Result<Period, Invalid> {
        let bad = || {
            Invalid::new(
                field,
                "invalid_period",
                format!("'{s}' is not a period: write the month as YYYY-MM, e.g. 2026-03"),
            )
        };
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || year < 1900 {
            return Err(bad());
        }
        Ok(Period { year, month })
    }

    /// The period a date (`YYYY-MM-DD`) falls in.
    pub fn of_date(date: chrono::NaiveDate) -> Period {
        use chrono::Datelike;
        Period {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn previous(self) -> Period {
        if self.month == 1 {
            Period {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Period {
                year: self.year,
                month: self.month - 1,
            }
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

// ---------------------------------------------------------------- metrics

/// A metric: a figure per customer and period, from an import, the API or keping's own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub code: &'static str,
    pub name_zh: &'static str,
    pub name_en: &'static str,
    pub unit: &'static str,
}

macro_rules! metrics {
    ($(($code:literal, $zh:literal, $en:literal, $unit:literal)),* $(,)?) => {
        /// Every metric a criterion may read (`"input": "metric:<code>"`).
        pub const METRICS: &[Metric] = &[$(Metric { code: $code, name_zh: $zh, name_en: $en, unit: $unit },)*];
    };
}

metrics! {
    ("sales_volume", "销量", "Sales volume", "units"),
    ("sales_amount", "销售额", "Sales amount", "yuan"),
    ("gross_profit", "毛利额", "Gross profit", "yuan"),
    ("gross_margin", "毛利率", "Gross margin", "%"),
    ("sales_growth", "销售增长率(环比)", "Sales growth vs previous period", "%"),
    ("sales_growth_yoy", "销售增长率(同比)", "Sales growth vs same period last year", "%"),
    ("order_batches", "订货批次", "Order batches", "count"),
    ("collection_rate", "回款率", "Collection rate", "%"),
    ("return_rate", "退货率", "Return rate", "%"),
    ("quote_success_rate", "报价成功率", "Quote success rate", "%"),
    ("complaints", "投诉次数", "Complaints", "count"),
    ("satisfaction", "满意度", "Satisfaction", "%"),
    ("days_since_last_order", "距上次订货天数", "Days since last order", "days"),
    ("frequency", "购买频次", "Purchase frequency", "count"),
    ("monetary", "消费金额", "Monetary value", "yuan"),
    ("arrears", "欠款", "Arrears", "yuan"),
    ("contribution_points", "贡献积分", "Contribution points", "points"),
}

pub fn metric(code: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.code == code)
}

// ---------------------------------------------------------------- the model format

/// A scoring model in the format of API.md ("Customer grading").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringModel {
    pub name: String,
    /// The top of the scale every criterion scores on and the total lands on (10, 100…).
    pub scale: f64,
    pub criteria: Vec<Criterion>,
    /// Taken from the highest `min` down: the first whose `min` ≤ total gives the grade.
    pub grades: Vec<GradeBand>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    pub code: String,
    pub name: String,
    pub weight: f64,
    /// `manual`, `metric:<code>` or `events` (deductions).
    pub input: String,
    pub normalize: Normalize,
    /// Guidance shown to whoever enters a manual value (e.g. the seed's reference bands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// How a criterion turns its input into a score on the model's scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalize {
    /// The input already is a score on the model's scale (clamped to it).
    None,
    /// `from` maps to 0 and `to` to the scale, clamped outside; `from` > `to` scores in reverse.
    Linear { from: f64, to: f64 },
    /// The first band with `min` ≤ input < `max` gives the score.
    Bands { bands: Vec<Band> },
    /// By rank in the population, highest value first: rank ≤ `to_rank` of the first band that
    /// has it; the last band (without `to_rank`) takes the rest.
    RankBands { bands: Vec<RankBand> },
    /// The share of the population below the input, times the scale (ties count half).
    Percentile {
        #[serde(default)]
        reverse: bool,
    },
    /// Text inputs (资信 AAA…C, 合作关系…) looked up in a table.
    Map { values: BTreeMap<String, f64> },
    /// Points deducted per event type, capped at `max`: the score is the share of `max` left.
    Deductions {
        max: f64,
        points: BTreeMap<String, f64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub min: f64,
    pub max: f64,
    pub score: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankBand {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_rank: Option<u32>,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeBand {
    pub min: f64,
    pub grade: String,
}

/// Where a criterion's input comes from, parsed from its `input` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A value a manager enters under the criterion's code.
    Manual,
    Metric(&'static Metric),
    /// Deduction events of the period.
    Events,
}

impl Criterion {
    pub fn source(&self) -> Source {
        parse_source(&self.input).expect("a checked model has known inputs")
    }

    /// The key its value is stored under in a customer's inputs.
    pub fn input_key(&self) -> &str {
        match self.source() {
            Source::Metric(m) => m.code,
            Source::Manual | Source::Events => &self.code,
        }
    }

    /// Whether the criterion takes text (a `map`) rather than numbers.
    pub fn takes_text(&self) -> bool {
        matches!(self.normalize, Normalize::Map { .. })
    }

    /// Whether an assessor's score, a number entered under the criterion's own code, may stand
    /// for what the criterion reads: for criteria that read a metric or a text. The seeds' tables
    /// give reference ranges (8–10, 5–8…) within which the assessor chooses.
    pub fn takes_assessment(&self) -> bool {
        matches!(self.source(), Source::Metric(_)) || self.takes_text()
    }
}

fn parse_source(input: &str) -> Option<Source> {
    match input {
        "manual" => Some(Source::Manual),
        "events" => Some(Source::Events),
        other => other
            .strip_prefix("metric:")
            .and_then(metric)
            .map(Source::Metric),
    }
}

fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn num(x: f64) -> String {
    let r = round6(x);
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r}")
    }
}

impl ScoringModel {
    /// Checks every rule of the format; the error names the field as a path
    /// (`criteria[2].normalize.bands[1].min`) and says what is wrong and where.
    pub fn check(&self) -> Result<(), Invalid> {
        crate::validate::required_text("name", &self.name, 100)?;
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(Invalid::new(
                "scale",
                "invalid_scale",
                "the scale must be a number above 0 (e.g. 10 or 100)",
            ));
        }
        if self.criteria.is_empty() {
            return Err(Invalid::new(
                "criteria",
                "required",
                "a model needs at least one criterion",
            ));
        }
        for (i, c) in self.criteria.iter().enumerate() {
            let f = |rest: &str| format!("criteria[{i}].{rest}");
            if !is_code(&c.code) {
                return Err(Invalid::new(
                    &f("code"),
                    "invalid_format",
                    "a criterion's code is 1–32 letters, digits, '_' or '-'",
                ));
            }
            if self.criteria[..i].iter().any(|o| o.code == c.code) {
                return Err(Invalid::new(
                    &f("code"),
                    "duplicate",
                    format!("criterion code '{}' appears twice", c.code),
                ));
            }
            if metric(&c.code).is_some()
                && !matches!(parse_source(&c.input), Some(Source::Metric(m)) if m.code == c.code)
            {
                return Err(Invalid::new(
                    &f("code"),
                    "reserved",
                    format!(
                        "'{}' is a metric's code; give the criterion another code",
                        c.code
                    ),
                ));
            }
            crate::validate::required_text(&f("name"), &c.name, 100)?;
            if !(c.weight.is_finite() && c.weight > 0.0) {
                return Err(Invalid::new(
                    &f("weight"),
                    "invalid_weight",
                    format!("the weight of '{}' must be above 0", c.code),
                ));
            }
            let Some(source) = parse_source(&c.input) else {
                let message = match c.input.strip_prefix("metric:") {
                    Some(m) => format!(
                        "there is no metric '{m}'; known metrics: {}",
                        METRICS
                            .iter()
                            .map(|m| m.code)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => "input is 'manual', 'metric:<code>' or 'events'".to_string(),
                };
                let code = if c.input.starts_with("metric:") {
                    "unknown_metric"
                } else {
                    "invalid_input"
                };
                return Err(Invalid::new(&f("input"), code, message));
            };
            let is_deductions = matches!(c.normalize, Normalize::Deductions { .. });
            if is_deductions != (source == Source::Events) {
                return Err(Invalid::new(
                    &f("input"),
                    "invalid_input",
                    "deductions read 'events', and 'events' are read only by deductions",
                ));
            }
            if c.takes_text() && source != Source::Manual {
                return Err(Invalid::new(
                    &f("normalize.kind"),
                    "invalid_choice",
                    "a 'map' of texts reads a manual input; metrics are numbers",
                ));
            }
            self.check_normalize(i, &c.normalize)?;
        }
        if self.grades.is_empty() {
            return Err(Invalid::new(
                "grades",
                "required",
                "a model needs at least one grade",
            ));
        }
        for (i, g) in self.grades.iter().enumerate() {
            crate::validate::required_text(&format!("grades[{i}].grade"), &g.grade, 20)?;
            if !g.min.is_finite() {
                return Err(Invalid::new(
                    &format!("grades[{i}].min"),
                    "invalid_number",
                    "min must be a number",
                ));
            }
            if let Some(j) = self.grades[..i].iter().position(|o| o.min == g.min) {
                return Err(Invalid::new(
                    &format!("grades[{i}].min"),
                    "overlap",
                    format!(
                        "grades[{j}] and grades[{i}] both start at {}: one of them could never be given",
                        num(g.min)
                    ),
                ));
            }
        }
        if !self.grades.iter().any(|g| g.min <= 0.0) {
            return Err(Invalid::new(
                "grades",
                "gap",
                format!(
                    "no grade starts at 0 or below: totals from 0 up to {} would have no grade",
                    num(self
                        .grades
                        .iter()
                        .map(|g| g.min)
                        .fold(f64::INFINITY, f64::min))
                ),
            ));
        }
        Ok(())
    }

    fn check_normalize(&self, i: usize, n: &Normalize) -> Result<(), Invalid> {
        let f = |rest: &str| format!("criteria[{i}].normalize.{rest}");
        let score_ok = |field: String, s: f64| {
            if s.is_finite() && (0.0..=self.scale).contains(&s) {
                Ok(())
            } else {
                Err(Invalid::new(
                    &field,
                    "out_of_scale",
                    format!("a score must lie within 0–{}", num(self.scale)),
                ))
            }
        };
        match n {
            Normalize::None | Normalize::Percentile { .. } => Ok(()),
            Normalize::Linear { from, to } => {
                if !(from.is_finite() && to.is_finite()) {
                    return Err(Invalid::new(
                        &f("from"),
                        "invalid_number",
                        "from and to must be numbers",
                    ));
                }
                if from == to {
                    return Err(Invalid::new(
                        &f("to"),
                        "empty_range",
                        format!(
                            "from and to are both {}: a range needs two ends",
                            num(*from)
                        ),
                    ));
                }
                Ok(())
            }
            Normalize::Bands { bands } => {
                if bands.is_empty() {
                    return Err(Invalid::new(&f("bands"), "required", "at least one band"));
                }
                let mut sorted: Vec<(usize, &Band)> = bands.iter().enumerate().collect();
                sorted.sort_by(|a, b| a.1.min.total_cmp(&b.1.min));
                for (j, b) in bands.iter().enumerate() {
                    if !(b.min.is_finite() && b.max.is_finite()) {
                        return Err(Invalid::new(
                            &f(&format!("bands[{j}].min")),
                            "invalid_number",
                            "min and max must be numbers",
                        ));
                    }
                    if b.min >= b.max {
                        return Err(Invalid::new(
                            &f(&format!("bands[{j}].max")),
                            "empty_range",
                            format!(
                                "band {j} runs from {} to {}: max must be above min",
                                num(b.min),
                                num(b.max)
                            ),
                        ));
                    }
                    score_ok(f(&format!("bands[{j}].score")), b.score)?;
                }
                for w in sorted.windows(2) {
                    let ((ja, a), (jb, b)) = (w[0], w[1]);
                    if b.min < a.max {
                        return Err(Invalid::new(
                            &f(&format!("bands[{jb}].min")),
                            "overlap",
                            format!(
                                "bands {ja} and {jb} overlap from {} to {}",
                                num(b.min),
                                num(a.max.min(b.max))
                            ),
                        ));
                    }
                    if b.min > a.max {
                        return Err(Invalid::new(
                            &f(&format!("bands[{jb}].min")),
                            "gap",
                            format!(
                                "no band covers {} to {} (between bands {ja} and {jb})",
                                num(a.max),
                                num(b.min)
                            ),
                        ));
                    }
                }
                Ok(())
            }
            Normalize::RankBands { bands } => {
                if bands.is_empty() {
                    return Err(Invalid::new(&f("bands"), "required", "at least one band"));
                }
                let mut last = 0u32;
                for (j, b) in bands.iter().enumerate() {
                    score_ok(f(&format!("bands[{j}].score")), b.score)?;
                    let is_last = j + 1 == bands.len();
                    match (b.to_rank, is_last) {
                        (None, true) => {}
                        (None, false) => {
                            return Err(Invalid::new(
                                &f(&format!("bands[{j}].to_rank")),
                                "required",
                                "only the last rank band may leave out to_rank (it takes the rest)",
                            ))
                        }
                        (Some(_), true) => {
                            return Err(Invalid::new(
                                &f(&format!("bands[{j}].to_rank")),
                                "gap",
                                "the last rank band takes the rest: leave out its to_rank, or customers ranked below it would have no band",
                            ))
                        }
                        (Some(r), false) => {
                            if r <= last {
                                return Err(Invalid::new(
                                    &f(&format!("bands[{j}].to_rank")),
                                    "overlap",
                                    format!("to_rank {r} is not above the band before it ({last})"),
                                ));
                            }
                            last = r;
                        }
                    }
                }
                Ok(())
            }
            Normalize::Map { values } => {
                if values.is_empty() {
                    return Err(Invalid::new(&f("values"), "required", "at least one value"));
                }
                for (k, s) in values {
                    score_ok(f(&format!("values.{k}")), *s)?;
                }
                Ok(())
            }
            Normalize::Deductions { max, points } => {
                if !(max.is_finite() && *max > 0.0) {
                    return Err(Invalid::new(
                        &f("max"),
                        "invalid_number",
                        "max must be above 0",
                    ));
                }
                if points.is_empty() {
                    return Err(Invalid::new(
                        &f("points"),
                        "required",
                        "name at least one event type and its points",
                    ));
                }
                for (k, p) in points {
                    if !is_code(k) {
                        return Err(Invalid::new(
                            &f("points"),
                            "invalid_format",
                            format!("event type '{k}' must be letters, digits, '_' or '-'"),
                        ));
                    }
                    if !(p.is_finite() && *p > 0.0) {
                        return Err(Invalid::new(
                            &f(&format!("points.{k}")),
                            "invalid_number",
                            "points deducted must be above 0",
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    pub fn total_weight(&self) -> f64 {
        self.criteria.iter().map(|c| c.weight).sum()
    }

    /// The grade of a total: from the highest `min` down, the first at or below it.
    pub fn grade_of(&self, total: f64) -> &str {
        let mut bands: Vec<&GradeBand> = self.grades.iter().collect();
        bands.sort_by(|a, b| b.min.total_cmp(&a.min));
        bands
            .iter()
            .find(|g| g.min <= total)
            .or(bands.last())
            .map_or("", |g| g.grade.as_str())
    }

    /// Whether some criterion scores against the population (rank bands, percentiles).
    pub fn needs_population(&self) -> bool {
        self.criteria.iter().any(|c| {
            matches!(
                c.normalize,
                Normalize::RankBands { .. } | Normalize::Percentile { .. }
            )
        })
    }
}

// ---------------------------------------------------------------- inputs and scoring

/// One input value: a number, or a text for `map` criteria.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Text(String),
}

/// Read by hand rather than as an untagged enum: a run reads a million of these, and untagged
/// enums buffer every value first.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a text")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                Ok(Value::Number(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Text(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::Text(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Value {
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Text(_) => None,
        }
    }
}

/// Input values by criterion or metric code, in code order. A run keeps a million customers'
/// values in memory, so they are one allocation per customer: a sorted slice found by binary
/// search, with codes held inline (they are short). A `BTreeMap<String, Value>` took about twice
/// the memory, with an allocation per code besides, and fresh memory is a large part of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values(Box<[(CompactString, Value)]>);

impl Values {
    pub fn new() -> Values {
        Values::default()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        // a customer has a dozen values or so: comparing each code for equality (mostly a length
        // check) beats the ordered comparisons of a binary search
        if self.0.len() <= 16 {
            self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        } else {
            self.0
                .binary_search_by(|(k, _)| k.as_str().cmp(key))
                .ok()
                .map(|i| &self.0[i].1)
        }
    }

    /// Sets `key`, answering the value it replaces.
    pub fn insert(&mut self, key: &str, value: Value) -> Option<Value> {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                let mut entries = std::mem::take(&mut self.0).into_vec();
                entries.insert(i, (key.into(), value));
                self.0 = entries.into_boxed_slice();
                None
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorts entries gathered in any order; of repeated codes the last one stands, as in a map.
    fn from_entries(mut entries: Vec<(CompactString, Value)>) -> Values {
        if !entries.is_sorted_by(|a, b| a.0 < b.0) {
            entries.reverse();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|later, kept| later.0 == kept.0);
        }
        Values(entries.into_boxed_slice())
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Values {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Values {
        Values::from_entries(
            iter.into_iter()
                .map(|(k, v)| (CompactString::from(k.as_ref()), v))
                .collect(),
        )
    }
}

impl Serialize for Values {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Values, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Values;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of input values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Values, A::Error> {
                // gathered on the stack first, so the one allocation kept is of the right size
                let mut entries: smallvec::SmallVec<[(CompactString, Value); 16]> =
                    smallvec::SmallVec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Values::from_entries(entries.into_vec()))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A customer's inputs for one period: values by criterion or metric code, and deduction events
/// counted by type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    pub values: Values,
    pub events: HashMap<String, u32>,
}

/// Checks one value entered under `key` against what reads it: a metric takes a number, a
/// manual criterion a number or (for a `map`) one of the map's texts.
pub fn check_value<'m>(
    key: &str,
    value: &Value,
    models: impl IntoIterator<Item = &'m ScoringModel>,
) -> Result<(), Invalid> {
    let field = format!("values.{key}");
    if metric(key).is_some() {
        return match value {
            Value::Number(n) if n.is_finite() => Ok(()),
            _ => Err(Invalid::new(
                &field,
                "invalid_type",
                format!("metric '{key}' is a number"),
            )),
        };
    }
    // the first model that has a criterion of this code decides what it takes
    let Some(c) = models
        .into_iter()
        .flat_map(|m| m.criteria.iter())
        .find(|c| c.code == key)
    else {
        return Err(Invalid::new(
            &field,
            "unknown_input",
            format!("'{key}' is neither a metric nor a manual criterion of a scoring model"),
        ));
    };
    if c.takes_assessment() && matches!(value, Value::Number(n) if n.is_finite()) {
        return Ok(());
    }
    if c.source() != Source::Manual {
        return Err(Invalid::new(
            &field,
            "invalid_type",
            format!("an assessor's score for '{}' is a number", c.name),
        ));
    }
    match (&c.normalize, value) {
        (Normalize::Map { values }, Value::Text(t)) if values.contains_key(t.trim()) => Ok(()),
        (Normalize::Map { values }, _) => Err(Invalid::new(
            &field,
            "invalid_choice",
            format!(
                "'{}' takes one of: {}",
                c.name,
                values.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )),
        (_, Value::Number(n)) if n.is_finite() => Ok(()),
        (_, _) => Err(Invalid::new(
            &field,
            "invalid_type",
            format!("'{}' is a number", c.name),
        )),
    }
}

/// How one criterion scored for one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub criterion: String,
    /// The value read (null when there was none).
    pub input: Option<Value>,
    pub score: f64,
    pub weighted: f64,
    /// What happened, for the explanation in words.
    pub why: Why,
}

/// The rule that gave a line its score, with the numbers a sentence needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Why {
    /// No input for the period: scores 0.
    Missing,
    /// Taken as a score (clamped when outside the scale).
    AsScore {
        clamped: bool,
    },
    /// An assessor's score entered under the criterion's code (clamped to the scale).
    Assessed {
        clamped: bool,
    },
    Linear {
        from: f64,
        to: f64,
        clamped: bool,
    },
    Band {
        index: usize,
        min: f64,
        max: f64,
    },
    /// Outside every band: scores 0.
    NoBand,
    Rank {
        rank: usize,
        of: usize,
        band: usize,
    },
    Percentile {
        below: f64,
        of: usize,
    },
    Mapped,
    Deducted {
        points: f64,
        max: f64,
        events: u32,
    },
}

/// A customer's score under a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub score: f64,
    pub grade: String,
    pub breakdown: Vec<Line>,
}

impl Scored {
    /// The breakdown as stored with a result: per line `[input, score, rule, numbers…]`, short
    /// enough for a million results a run; [`read_breakdown`] restores the rest from the model.
    pub fn stored_breakdown(&self) -> String {
        let mut out = String::with_capacity(24 * self.breakdown.len() + 2);
        self.write_breakdown(&mut out);
        out
    }

    /// [`Scored::stored_breakdown`], appended to `out`.
    pub fn write_breakdown(&self, out: &mut String) {
        use std::fmt::Write;
        // written by hand: a run writes a million of these
        out.push('[');
        for (i, l) in self.breakdown.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            match &l.input {
                None => out.push_str("null"),
                Some(Value::Number(n)) => push_json_number(out, *n),
                Some(Value::Text(t)) => {
                    out.push_str(&serde_json::Value::String(t.clone()).to_string())
                }
            }
            out.push(',');
            push_json_number(out, l.score);
            let flag = |b: bool| u8::from(b);
            let _ = match &l.why {
                Why::Missing => write!(out, ",\"m\""),
                Why::AsScore { clamped } => write!(out, ",\"s\",{}", flag(*clamped)),
                Why::Assessed { clamped } => write!(out, ",\"a\",{}", flag(*clamped)),
                Why::Linear { clamped, .. } => write!(out, ",\"l\",{}", flag(*clamped)),
                Why::Band { index, .. } => write!(out, ",\"b\",{index}"),
                Why::NoBand => write!(out, ",\"n\""),
                Why::Rank { rank, of, band } => write!(out, ",\"r\",{rank},{of},{band}"),
                Why::Percentile { below, of } => {
                    write!(out, ",\"p\",{},{of}", json_number(*below))
                }
                Why::Mapped => write!(out, ",\"t\""),
                Why::Deducted { points, events, .. } => {
                    write!(out, ",\"d\",{},{events}", json_number(*points))
                }
            };
            out.push(']');
        }
        out.push(']');
    }
}

/// [`json_number`], appended to `out` without a String of its own.
pub fn push_json_number(out: &mut String, x: f64) {
    if x.is_finite() {
        // ryu rather than `{:?}`: the same shortest form that reads back exactly, in a third of
        // the time, and a run writes a dozen numbers per customer
        out.push_str(ryu::Buffer::new().format_finite(x));
    } else {
        out.push('0');
    }
}

/// A finite number as JSON writes it (scores are finite; anything else is stored as 0).
fn json_number(x: f64) -> String {
    let mut out = String::new();
    push_json_number(&mut out, x);
    out
}

/// A stored breakdown read back with the model version it was computed with.
pub fn read_breakdown(model: &ScoringModel, stored: &str) -> Option<Vec<Line>> {
    let lines: Vec<Vec<serde_json::Value>> = serde_json::from_str(stored).ok()?;
    let total_weight = model.total_weight();
    model
        .criteria
        .iter()
        .zip(lines)
        .map(|(c, l)| {
            let input = match l.first()? {
                serde_json::Value::Null => None,
                serde_json::Value::String(t) => Some(Value::Text(t.clone())),
                v => Some(Value::Number(v.as_f64()?)),
            };
            let score = l.get(1)?.as_f64()?;
            let n = |i: usize| l.get(i).and_then(serde_json::Value::as_f64);
            let u = |i: usize| l.get(i).and_then(serde_json::Value::as_u64);
            let why = match l.get(2)?.as_str()? {
                "m" => Why::Missing,
                "s" => Why::AsScore {
                    clamped: u(3)? == 1,
                },
                "a" => Why::Assessed {
                    clamped: u(3)? == 1,
                },
                "l" => match c.normalize {
                    Normalize::Linear { from, to } => Why::Linear {
                        from,
                        to,
                        clamped: u(3)? == 1,
                    },
                    _ => return None,
                },
                "b" => match &c.normalize {
                    Normalize::Bands { bands } => {
                        let index = u(3)? as usize;
                        let b = bands.get(index)?;
                        Why::Band {
                            index,
                            min: b.min,
                            max: b.max,
                        }
                    }
                    _ => return None,
                },
                "n" => Why::NoBand,
                "r" => Why::Rank {
                    rank: u(3)? as usize,
                    of: u(4)? as usize,
                    band: u(5)? as usize,
                },
                "p" => Why::Percentile {
                    below: n(3)?,
                    of: u(4)? as usize,
                },
                "t" => Why::Mapped,
                "d" => match c.normalize {
                    Normalize::Deductions { max, .. } => Why::Deducted {
                        points: n(3)?,
                        max,
                        events: u(4)? as u32,
                    },
                    _ => return None,
                },
                _ => return None,
            };
            Some(Line {
                criterion: c.code.clone(),
                input,
                score,
                weighted: round6(c.weight * score / total_weight),
                why,
            })
        })
        .collect()
}

/// Rounds to six decimals, so that 0.1 + 0.2 shows as 0.3 and stored totals compare.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The population a run scores, for criteria that rank: per criterion, every customer's value.
struct Population {
    /// Per criterion index (only ranking ones): values sorted from highest to lowest.
    sorted: HashMap<usize, Vec<f64>>,
}

impl Population {
    fn of(model: &ScoringModel, everyone: &[&Inputs]) -> Population {
        let mut sorted = HashMap::new();
        for (i, c) in model.criteria.iter().enumerate() {
            if matches!(
                c.normalize,
                Normalize::RankBands { .. } | Normalize::Percentile { .. }
            ) {
                let key = c.input_key();
                let mut v: Vec<f64> = everyone
                    .iter()
                    .filter_map(|inp| inp.values.get(key).and_then(Value::as_number))
                    .collect();
                v.sort_by(|a, b| b.total_cmp(a));
                sorted.insert(i, v);
            }
        }
        Population { sorted }
    }
}

/// What every customer's scoring needs from the model and the population, worked out once per
/// run; a run scores its customers with it a batch at a time, as it writes them.
pub struct Scorer<'m> {
    model: &'m ScoringModel,
    /// Per criterion: the key its input is stored under, and whether an assessor's score may stand.
    keys: Vec<(&'m str, bool)>,
    /// Grade bands from the highest `min` down.
    grades: Vec<&'m GradeBand>,
    total_weight: f64,
    population: Population,
}

impl<'m> Scorer<'m> {
    /// Criteria that rank compare each customer with the others in `everyone`.
    pub fn new(model: &'m ScoringModel, everyone: &[&Inputs]) -> Scorer<'m> {
        let mut grades: Vec<&GradeBand> = model.grades.iter().collect();
        grades.sort_by(|a, b| b.min.total_cmp(&a.min));
        Scorer {
            model,
            keys: model
                .criteria
                .iter()
                .map(|c| (c.input_key(), c.takes_assessment()))
                .collect(),
            grades,
            total_weight: model.total_weight(),
            population: Population::of(model, everyone),
        }
    }

    fn grade_of(&self, total: f64) -> &str {
        self.grades
            .iter()
            .find(|g| g.min <= total)
            .or(self.grades.last())
            .map_or("", |g| g.grade.as_str())
    }

    /// One customer's score, with a line per criterion.
    pub fn score(&self, inputs: &Inputs) -> Scored {
        let scale = self.model.scale;
        let mut breakdown = Vec::with_capacity(self.model.criteria.len());
        let mut total = 0.0;
        for (i, c) in self.model.criteria.iter().enumerate() {
            let (input, score, why) = criterion_score(self, i, c, inputs);
            let score = round6(score.clamp(0.0, scale));
            let weighted = c.weight * score / self.total_weight;
            total += weighted;
            breakdown.push(Line {
                criterion: c.code.clone(),
                input,
                score,
                weighted: round6(weighted),
                why,
            });
        }
        let score = round6(total.clamp(0.0, scale));
        Scored {
            grade: self.grade_of(score).to_string(),
            score,
            breakdown,
        }
    }
}

/// Scores a whole population (a preview over sample customers, a test): criteria that rank
/// compare each customer with the others in `everyone`.
pub fn score_all(model: &ScoringModel, everyone: &[&Inputs]) -> Vec<Scored> {
    let scorer = Scorer::new(model, everyone);
    everyone.iter().map(|inp| scorer.score(inp)).collect()
}

/// Scores one customer alone (ranking criteria see a population of one).
pub fn score(model: &ScoringModel, inputs: &Inputs) -> Scored {
    score_all(model, &[inputs]).remove(0)
}

fn criterion_score(
    p: &Scorer,
    index: usize,
    c: &Criterion,
    inputs: &Inputs,
) -> (Option<Value>, f64, Why) {
    let scale = p.model.scale;
    let population = &p.population;
    let (key, takes_assessment) = p.keys[index];
    if let Normalize::Deductions { max, points } = &c.normalize {
        let mut deducted = 0.0;
        let mut events = 0;
        for (kind, n) in &inputs.events {
            if let Some(p) = points.get(kind) {
                deducted += p * f64::from(*n);
                events += n;
            }
        }
        let capped = deducted.min(*max);
        return (
            Some(Value::Number(f64::from(events))),
            scale * (max - capped) / max,
            Why::Deducted {
                points: round6(capped),
                max: *max,
                events,
            },
        );
    }
    if takes_assessment {
        if let Some(Value::Number(x)) = inputs.values.get(&c.code) {
            return (
                Some(Value::Number(*x)),
                *x,
                Why::Assessed {
                    clamped: !(0.0..=scale).contains(x),
                },
            );
        }
    }
    let Some(value) = inputs.values.get(key) else {
        return (None, 0.0, Why::Missing);
    };
    let input = Some(value.clone());
    match (&c.normalize, value) {
        (Normalize::Map { values }, Value::Text(t)) => match values.get(t.trim()) {
            Some(s) => (input, *s, Why::Mapped),
            None => (input, 0.0, Why::NoBand),
        },
        (_, Value::Text(_)) | (Normalize::Map { .. }, _) => (None, 0.0, Why::Missing),
        (n, Value::Number(x)) => {
            let x = *x;
            match n {
                Normalize::None => (
                    input,
                    x.clamp(0.0, scale),
                    Why::AsScore {
                        clamped: !(0.0..=scale).contains(&x),
                    },
                ),
                Normalize::Linear { from, to } => {
                    let t = (x - from) / (to - from);
                    (
                        input,
                        scale * t.clamp(0.0, 1.0),
                        Why::Linear {
                            from: *from,
                            to: *to,
                            clamped: !(0.0..=1.0).contains(&t),
                        },
                    )
                }
                Normalize::Bands { bands } => {
                    match bands.iter().position(|b| b.min <= x && x < b.max) {
                        Some(j) => (
                            input,
                            bands[j].score,
                            Why::Band {
                                index: j,
                                min: bands[j].min,
                                max: bands[j].max,
                            },
                        ),
                        None => (input, 0.0, Why::NoBand),
                    }
                }
                Normalize::RankBands { bands } => {
                    let sorted = &population.sorted[&index];
                    // 1 + how many have more: ties share the better rank
                    let rank = 1 + sorted.partition_point(|v| *v > x);
                    let band = bands
                        .iter()
                        .position(|b| b.to_rank.is_none_or(|r| rank <= r as usize))
                        .unwrap_or(bands.len() - 1);
                    (
                        input,
                        bands[band].score,
                        Why::Rank {
                            rank,
                            of: sorted.len(),
                            band,
                        },
                    )
                }
                Normalize::Percentile { reverse } => {
                    let sorted = &population.sorted[&index];
                    let n = sorted.len();
                    let above = sorted.partition_point(|v| *v > x);
                    let not_below = sorted.partition_point(|v| *v >= x);
                    let below = (n - not_below) as f64;
                    let ties = (not_below - above).saturating_sub(1) as f64;
                    let share = if n <= 1 {
                        1.0
                    } else {
                        (below + ties / 2.0) / (n - 1) as f64
                    };
                    let share = if *reverse { 1.0 - share } else { share };
                    (
                        input,
                        scale * share,
                        Why::Percentile {
                            below: round6(share * 100.0),
                            of: n,
                        },
                    )
                }
                Normalize::Map { .. } | Normalize::Deductions { .. } => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

// ---------------------------------------------------------------- built-in templates

/// The built-in templates, by code: SPEC §4.1–4.3.
pub const TEMPLATE_CODES: [&str; 3] = ["composite", "key_account", "points_deduction"];

pub fn template(code: &str) -> Option<ScoringModel> {
    let json = match code {
        "composite" => COMPOSITE,
        "key_account" => KEY_ACCOUNT,
        "points_deduction" => POINTS_DEDUCTION,
        _ => return None,
    };
    let model: ScoringModel = serde_json::from_str(json).expect("templates parse");
    debug_assert!(model.check().is_ok());
    Some(model)
}

/// SPEC §4.1, 重庆涪柴 客户综合评价标准 (seed 000). Percent scale; every criterion linear between
/// the seed's ends. The seed's worked example prints 69, but its first term rests on a slip:
/// 200万 over 10万–210万 is (200 − 10) / (210 − 10) = 95%, not 90%. With the seed's inputs
/// (200万, +25%, 92% collected, 6% returned, manager 80) this template gives
/// 0.3×95 + 0.3×100 + 0.2×20 + 0.1×0 + 0.1×80 = 70.5. A firm that wants the seed's own figures
/// (200万 → 90, 2% returns → 75) replaces the linear rule by a band table for that criterion.
const COMPOSITE: &str = r#"{
 "name": "客户综合评价", "scale": 100,
 "criteria": [
  {"code": "volume", "name": "销售量", "weight": 30, "input": "metric:sales_amount",
   "normalize": {"kind": "linear", "from": 100000, "to": 2100000}, "hint": "10万–210万元之间按比例计分"},
  {"code": "growth", "name": "销售增长率", "weight": 30, "input": "metric:sales_growth_yoy",
   "normalize": {"kind": "linear", "from": 0, "to": 25}, "hint": "0–25%之间按比例计分"},
  {"code": "collection", "name": "回款率", "weight": 20, "input": "metric:collection_rate",
   "normalize": {"kind": "linear", "from": 90, "to": 100}, "hint": "90%–100%之间按比例计分"},
  {"code": "returns", "name": "退货率", "weight": 10, "input": "metric:return_rate",
   "normalize": {"kind": "linear", "from": 5, "to": 1}, "hint": "≤1%得100分,≥5%得0分,之间倒序计分"},
  {"code": "manager", "name": "销售经理评价", "weight": 10, "input": "manual",
   "normalize": {"kind": "none"}, "hint": "0–100分"}],
 "grades": [{"min": 85, "grade": "A"}, {"min": 70, "grade": "B"}, {"min": 55, "grade": "C"}, {"min": 0, "grade": "D"}]
}"#;

/// SPEC §4.2, 中小型企业大客户评价标准 (seed 000). Scale 10. The seed gives each criterion
/// reference score ranges (8–10, 5–8, 0–5) within which the assessor chooses; the template scores
/// each band at its range's middle when the figure is known, and an assessor's score entered under
/// the criterion's own code stands for the band (as in the seed's table of four customers).
const KEY_ACCOUNT: &str = r#"{
 "name": "大客户评价", "scale": 10,
 "criteria": [
  {"code": "trade_volume", "name": "交易额", "weight": 25, "input": "metric:sales_amount",
   "normalize": {"kind": "rank_bands", "bands": [{"to_rank": 10, "score": 9}, {"to_rank": 20, "score": 6.5}, {"score": 2.5}]},
   "hint": "前十名 8~10;10~20名 5~8;20名以后 0~5"},
  {"code": "margin", "name": "利润率(毛利率)", "weight": 20, "input": "metric:gross_margin",
   "normalize": {"kind": "bands", "bands": [{"min": -1000, "max": 5, "score": 2.5}, {"min": 5, "max": 10, "score": 6.5}, {"min": 10, "max": 1000, "score": 9}]},
   "hint": "10%以上 8~10;5%~10% 5~8;5%以下 0~5"},
  {"code": "potential", "name": "发展潜力", "weight": 15, "input": "metric:sales_growth_yoy",
   "normalize": {"kind": "bands", "bands": [{"min": -1000000, "max": 5, "score": 2.5}, {"min": 5, "max": 10, "score": 6.5}, {"min": 10, "max": 1000000, "score": 9}]},
   "hint": "交易额增长率10%以上且前景良好 8~10;5%~10% 5~8;5%以下 0~5"},
  {"code": "credit", "name": "资信情况", "weight": 15, "input": "manual",
   "normalize": {"kind": "map", "values": {"AAA": 10, "AA": 9, "A": 8, "BBB": 7.5, "BB": 6.5, "B": 5.5, "CCC": 4, "CC": 2.5, "C": 1}},
   "hint": "A~AAA级:按期付款 8~10;B~BBB级:偶有拖欠 5~8;C~CCC级:经常拖欠 0~5"},
  {"code": "quote_success", "name": "报价成功率", "weight": 10, "input": "metric:quote_success_rate",
   "normalize": {"kind": "bands", "bands": [{"min": 0, "max": 10, "score": 2.5}, {"min": 10, "max": 30, "score": 6.5}, {"min": 30, "max": 100.000001, "score": 9}]},
   "hint": "30%以上 8~10;10%~30% 5~8;10%以下 0~5"},
  {"code": "relationship", "name": "合作关系", "weight": 10, "input": "manual",
   "normalize": {"kind": "none"}, "hint": "朋友关系 8~10;一般关系 5~8;较难相处 0~5"},
  {"code": "service_demand", "name": "要求的服务水准", "weight": 5, "input": "manual",
   "normalize": {"kind": "none"}, "hint": "基本服务或有补偿 8~10;特殊服务无补偿 5~8;要求苛刻 0~5"}],
 "grades": [{"min": 8, "grade": "A"}, {"min": 6, "grade": "B"}, {"min": 0, "grade": "C"}]
}"#;

/// SPEC §4.3, 辽源烟草 客户分级评价体系 (seed 001): contribution 60 (volume 40% / amount 20% /
/// gross profit 40%, each by percentile among the customers graded, from the distribution
/// system's monthly figures), integrity 20 and cooperation 20 (service 10, delivery 10) by
/// deductions. On the 100 scale a deduction criterion's weighted score is the points it keeps.
const POINTS_DEDUCTION: &str = r#"{
 "name": "客户分级评价(积分扣分制)", "scale": 100,
 "criteria": [
  {"code": "volume", "name": "贡献度-销量", "weight": 24, "input": "metric:sales_volume", "normalize": {"kind": "percentile"}},
  {"code": "amount", "name": "贡献度-销售额", "weight": 12, "input": "metric:sales_amount", "normalize": {"kind": "percentile"}},
  {"code": "profit", "name": "贡献度-毛利额", "weight": 24, "input": "metric:gross_profit", "normalize": {"kind": "percentile"}},
  {"code": "integrity", "name": "诚信度", "weight": 20, "input": "events",
   "normalize": {"kind": "deductions", "max": 20, "points": {"illegal_products": 20, "non_channel": 10, "obstruct_inspection": 10, "unlicensed_wholesale": 20, "licence_display": 5}},
   "hint": "销售非法生产烟草专卖制品 −20;销售非渠道卷烟 −10;不配合稽查 −10;无证批发 −20;许可证不按规定摆放 −5"},
  {"code": "service", "name": "合作度-客服", "weight": 10, "input": "events",
   "normalize": {"kind": "deductions", "max": 10, "points": {"settlement_failure": 5, "brand_missing": 5, "price_not_marked": 5}},
   "hint": "电子结算不成功一次 −5;培育品牌少一个品种 −5;一个品种不执行指导价 −5"},
  {"code": "delivery", "name": "合作度-配送", "weight": 10, "input": "events",
   "normalize": {"kind": "deductions", "max": 10, "points": {"delivery_lapse": 5}}, "hint": "配送配合不到位一次 −5"}],
 "grades": [{"min": 90, "grade": "A"}, {"min": 80, "grade": "B"}, {"min": 70, "grade": "C"}, {"min": 60, "grade": "D"}, {"min": 0, "grade": "E"}]
}"#;

// ---------------------------------------------------------------- classifications

/// ABC class (客户ABC分类): A the top 5% of customers by value, B the next 15%, C the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Abc {
    A,
    B,
    C,
}

impl Abc {
    pub fn code(self) -> &'static str {
        match self {
            Abc::A => "A",
            Abc::B => "B",
            Abc::C => "C",
        }
    }
}

/// Positions in a list of `n` sorted from the best: the first ⌈n·a⌉ take the first class, up to
/// ⌈n·(a+b)⌉ the second, the rest the third. Equal values share the class of the first of them.
fn tiers<T: Copy>(values: &[f64], cuts: [f64; 2], classes: [T; 3]) -> Vec<T> {
    let n = values.len();
    // values sorted beside their positions (a run sorts a million: no lookups while sorting);
    // the order among equal values does not matter, as they share a class
    let mut order: Vec<(f64, usize)> = values.iter().copied().zip(0..).collect();
    order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let first = (n as f64 * cuts[0]).ceil() as usize;
    let second = (n as f64 * (cuts[0] + cuts[1]) - 1e-9).ceil() as usize;
    let mut out = vec![classes[2]; n];
    let mut prev: Option<(f64, T)> = None;
    for (pos, &(value, i)) in order.iter().enumerate() {
        let class = match prev {
            Some((v, c)) if v == value => c,
            _ if pos < first => classes[0],
            _ if pos < second => classes[1],
            _ => classes[2],
        };
        out[i] = class;
        prev = Some((value, class));
    }
    out
}

/// ABC classes of a population by value (e.g. sales amount), in the order given.
pub fn abc(values: &[f64]) -> Vec<Abc> {
    tiers(values, [0.05, 0.15], [Abc::A, Abc::B, Abc::C])
}

/// Business scale within a segment (卷烟零售 经营规模): large / medium / small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleTier {
    Large,
    Medium,
    Small,
}

impl ScaleTier {
    pub fn code(self) -> &'static str {
        match self {
            ScaleTier::Large => "large",
            ScaleTier::Medium => "medium",
            ScaleTier::Small => "small",
        }
    }
}

/// Scale tiers within one segment: by (volume share + amount share) / 2, the top 20% large, the
/// next 60% medium, the last 20% small. Inputs are (volume, amount) per customer.
pub fn scale_tiers(figures: &[(f64, f64)]) -> Vec<ScaleTier> {
    let volume: f64 = figures.iter().map(|f| f.0.max(0.0)).sum();
    let amount: f64 = figures.iter().map(|f| f.1.max(0.0)).sum();
    let share = |x: f64, total: f64| if total > 0.0 { x.max(0.0) / total } else { 0.0 };
    let index: Vec<f64> = figures
        .iter()
        .map(|(v, a)| (share(*v, volume) + share(*a, amount)) / 2.0)
        .collect();
    tiers(
        &index,
        [0.2, 0.6],
        [ScaleTier::Large, ScaleTier::Medium, ScaleTier::Small],
    )
}

/// A customer's figures for a year, against the year before, for lifecycle categories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AnnualFigures {
    /// Whether the customer was first developed this year.
    pub new_this_year: bool,
    pub sales_amount: f64,
    pub last_year_sales_amount: f64,
    pub batches: f64,
    /// Percent.
    pub collection_rate: f64,
    pub last_year_collection_rate: f64,
    /// Percent.
    pub return_rate: f64,
    pub arrears: f64,
}

impl AnnualFigures {
    fn field(&self, name: LifecycleField) -> f64 {
        match name {
            LifecycleField::NewThisYear => f64::from(u8::from(self.new_this_year)),
            LifecycleField::SalesAmount => self.sales_amount,
            LifecycleField::Batches => self.batches,
            LifecycleField::CollectionRate => self.collection_rate,
            LifecycleField::ReturnRate => self.return_rate,
            LifecycleField::Arrears => self.arrears,
            LifecycleField::SalesChangePct => {
                if self.last_year_sales_amount > 0.0 {
                    (self.sales_amount - self.last_year_sales_amount) / self.last_year_sales_amount
                        * 100.0
                } else {
                    0.0
                }
            }
            LifecycleField::CollectionChangePoints => {
                self.collection_rate - self.last_year_collection_rate
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleField {
    NewThisYear,
    SalesAmount,
    Batches,
    CollectionRate,
    ReturnRate,
    Arrears,
    /// Sales against last year, in percent (−50 = halved).
    SalesChangePct,
    /// Collection rate against last year, in percentage points.
    CollectionChangePoints,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "=")]
    Eq,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub field: LifecycleField,
    pub op: Op,
    pub value: f64,
}

impl Condition {
    fn holds(&self, f: &AnnualFigures) -> bool {
        let x = f.field(self.field);
        match self.op {
            Op::Lt => x < self.value,
            Op::Le => x <= self.value,
            Op::Gt => x > self.value,
            Op::Ge => x >= self.value,
            Op::Eq => x == self.value,
        }
    }
}

/// A lifecycle rule: the category when every condition holds (all of `all`, and at least one of
/// `any` when `any` is not empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub category: String,
    #[serde(default)]
    pub all: Vec<Condition>,
    #[serde(default)]
    pub any: Vec<Condition>,
}

/// The first rule that matches gives the category; none matching gives None.
pub fn lifecycle<'r>(rules: &'r [LifecycleRule], f: &AnnualFigures) -> Option<&'r str> {
    rules
        .iter()
        .find(|r| {
            r.all.iter().all(|c| c.holds(f))
                && (r.any.is_empty() || r.any.iter().any(|c| c.holds(f)))
        })
        .map(|r| r.category.as_str())
}

/// SPEC §4.4 (seed 000 客户分类评价标准), in an order where the first match is the right one.
/// Amounts in 元, rates in percent.
pub fn default_lifecycle_rules() -> Vec<LifecycleRule> {
    use LifecycleField as F;
    let c = |field, op, value| Condition { field, op, value };
    let rule = |category: &str, all: Vec<Condition>, any: Vec<Condition>| LifecycleRule {
        category: category.into(),
        all,
        any,
    };
    vec![
        rule(
            "no_business",
            vec![c(F::SalesAmount, Op::Le, 0.0), c(F::Arrears, Op::Le, 0.0)],
            vec![],
        ),
        rule(
            "dormant",
            vec![
                c(F::SalesAmount, Op::Lt, 20_000.0),
                c(F::Arrears, Op::Ge, 20_000.0),
            ],
            vec![],
        ),
        rule(
            "pending",
            vec![c(F::Arrears, Op::Gt, 0.0)],
            vec![c(F::SalesAmount, Op::Le, 0.0), c(F::Batches, Op::Lt, 2.0)],
        ),
        rule(
            "deteriorating",
            vec![c(F::NewThisYear, Op::Eq, 0.0)],
            vec![
                c(F::SalesChangePct, Op::Le, -50.0),
                c(F::CollectionChangePoints, Op::Le, -10.0),
            ],
        ),
        rule(
            "new_effective",
            vec![
                c(F::NewThisYear, Op::Eq, 1.0),
                c(F::SalesAmount, Op::Gt, 100_000.0),
            ],
            vec![],
        ),
        rule(
            "new_ineffective",
            vec![
                c(F::NewThisYear, Op::Eq, 1.0),
                c(F::SalesAmount, Op::Lt, 100_000.0),
            ],
            vec![],
        ),
        rule("new", vec![c(F::NewThisYear, Op::Eq, 1.0)], vec![]),
        rule(
            "normal",
            vec![
                c(F::SalesAmount, Op::Gt, 100_000.0),
                c(F::Batches, Op::Gt, 3.0),
                c(F::CollectionRate, Op::Gt, 95.0),
                c(F::ReturnRate, Op::Lt, 5.0),
            ],
            vec![],
        ),
        rule(
            "abnormal",
            vec![c(F::SalesAmount, Op::Gt, 100_000.0)],
            vec![
                c(F::CollectionRate, Op::Lt, 95.0),
                c(F::ReturnRate, Op::Gt, 5.0),
            ],
        ),
    ]
}

/// A service-level override of a star level (工商银行星级: 手工调整, 定时).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StarOverride {
    pub level: u8,
    /// Until this date (inclusive) for a fixed-date override; None for a manual one that holds
    /// until removed.
    pub until: Option<chrono::NaiveDate>,
}

/// Contribution points for 1, 2 and 3 stars.
pub const STAR_THRESHOLDS: [f64; 3] = [100.0, 300.0, 1000.0];

/// What an org classifies its customers with beyond the scoring model, inherited down the tree:
/// the lifecycle rules (first match wins, in this order) and the contribution points for each star.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradingSettings {
    pub lifecycle_rules: Vec<LifecycleRule>,
    /// Contribution points for 1, 2, … stars, ascending.
    pub star_thresholds: Vec<f64>,
}

impl Default for GradingSettings {
    fn default() -> Self {
        GradingSettings {
            lifecycle_rules: default_lifecycle_rules(),
            star_thresholds: STAR_THRESHOLDS.to_vec(),
        }
    }
}

/// At most this many star levels (thresholds).
pub const MAX_STARS: usize = 7;
/// At most this many lifecycle rules, and conditions per rule.
pub const MAX_LIFECYCLE_RULES: usize = 30;
pub const MAX_CONDITIONS: usize = 10;

impl GradingSettings {
    pub fn validate(&self) -> Result<(), Invalid> {
        let t = &self.star_thresholds;
        if t.is_empty() || t.len() > MAX_STARS {
            return Err(Invalid::new(
                "star_thresholds",
                "out_of_range",
                format!("give 1 to {MAX_STARS} thresholds, one per star"),
            ));
        }
        for (i, v) in t.iter().enumerate() {
            if !v.is_finite() || *v <= 0.0 {
                return Err(Invalid::new(
                    &format!("star_thresholds[{i}]"),
                    "out_of_range",
                    "a threshold is a number of points above 0",
                ));
            }
            if i > 0 && *v <= t[i - 1] {
                return Err(Invalid::new(
                    &format!("star_thresholds[{i}]"),
                    "not_ascending",
                    format!(
                        "{} stars need more points than {} ({v} is not above {})",
                        i + 1,
                        i,
                        t[i - 1]
                    ),
                ));
            }
        }
        let rules = &self.lifecycle_rules;
        if rules.len() > MAX_LIFECYCLE_RULES {
            return Err(Invalid::new(
                "lifecycle_rules",
                "too_many",
                format!("at most {MAX_LIFECYCLE_RULES} lifecycle rules"),
            ));
        }
        for (i, r) in rules.iter().enumerate() {
            let at = |what: &str| format!("lifecycle_rules[{i}].{what}");
            let category = r.category.trim();
            if category.is_empty() || category.chars().count() > 40 {
                return Err(Invalid::new(
                    &at("category"),
                    "invalid",
                    "a category is a name of 1 to 40 characters",
                ));
            }
            if r.all.len() + r.any.len() > MAX_CONDITIONS {
                return Err(Invalid::new(
                    &at("all"),
                    "too_many",
                    format!("at most {MAX_CONDITIONS} conditions in a rule"),
                ));
            }
            if let Some((j, _)) = r
                .all
                .iter()
                .chain(&r.any)
                .enumerate()
                .find(|(_, c)| !c.value.is_finite())
            {
                return Err(Invalid::new(
                    &at("all"),
                    "invalid_number",
                    format!("condition {} has no finite value", j + 1),
                ));
            }
            if r.all.is_empty() && r.any.is_empty() && i + 1 < rules.len() {
                return Err(Invalid::new(
                    &at("all"),
                    "unreachable",
                    format!(
                        "rule {} has no condition and matches every customer: the {} rule(s) after it could never match",
                        i + 1,
                        rules.len() - i - 1
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A customer's figures for lifecycle categories from a period's values (`sales_amount`,
/// `order_batches`, `collection_rate`, `return_rate`, `arrears`) and those of the same period a
/// year before (last year's sales from them, else from `sales_growth_yoy`). None without a sales
/// amount: no category is guessed from nothing.
pub fn annual_figures(
    values: &Values,
    last_year: Option<&Values>,
    new_this_year: bool,
) -> Option<AnnualFigures> {
    let num = |m: &Values, k: &str| m.get(k).and_then(Value::as_number);
    let sales_amount = num(values, "sales_amount")?;
    let last_sales = last_year
        .and_then(|l| num(l, "sales_amount"))
        .or_else(|| {
            num(values, "sales_growth_yoy")
                .filter(|g| *g > -100.0)
                .map(|g| sales_amount / (1.0 + g / 100.0))
        })
        .unwrap_or(0.0);
    let collection_rate = num(values, "collection_rate").unwrap_or(100.0);
    Some(AnnualFigures {
        new_this_year,
        sales_amount,
        last_year_sales_amount: last_sales,
        batches: num(values, "order_batches").unwrap_or(0.0),
        collection_rate,
        last_year_collection_rate: last_year
            .and_then(|l| num(l, "collection_rate"))
            .unwrap_or(collection_rate),
        return_rate: num(values, "return_rate").unwrap_or(0.0),
        arrears: num(values, "arrears").unwrap_or(0.0),
    })
}

/// The star level from monthly contribution points: the number of thresholds reached (thresholds
/// ascending, e.g. [100, 300, 1000] for 1–3 stars), unless an override in force says otherwise.
pub fn star_level(
    points: f64,
    thresholds: &[f64],
    over: Option<StarOverride>,
    today: chrono::NaiveDate,
) -> u8 {
    if let Some(o) = over.filter(|o| o.until.is_none_or(|u| today <= u)) {
        return o.level;
    }
    thresholds.iter().filter(|t| points >= **t).count() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_keep_the_last_of_repeated_codes_and_find_every_code() {
        let read: Values = serde_json::from_str(r#"{"b": 2, "a": "x", "b": 3, "c": 1.5}"#).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read.get("b"), Some(&Value::Number(3.0)));
        assert_eq!(read.get("a"), Some(&Value::Text("x".into())));
        assert_eq!(read.get("d"), None);
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            r#"{"a":"x","b":3.0,"c":1.5}"#
        );
        // past the size searched one by one, and with codes longer than held inline
        let mut many: Values = (0..40)
            .rev()
            .map(|i| {
                (
                    format!("criterion_with_a_long_code_{i:02}"),
                    Value::Number(i.into()),
                )
            })
            .collect();
        for i in 0..40 {
            let code = format!("criterion_with_a_long_code_{i:02}");
            assert_eq!(many.get(&code), Some(&Value::Number(i.into())));
        }
        assert_eq!(many.insert("a", Value::Number(1.0)), None);
        assert_eq!(
            many.insert("a", Value::Number(2.0)),
            Some(Value::Number(1.0))
        );
        assert_eq!(many.iter().next(), Some(("a", &Value::Number(2.0))));
        assert_eq!(many.len(), 41);
    }

    fn inputs(values: &[(&str, f64)]) -> Inputs {
        Inputs {
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Number(*v)))
                .collect(),
            events: HashMap::new(),
        }
    }

    #[test]
    fn templates_are_valid_models() {
        for code in TEMPLATE_CODES {
            template(code).unwrap().check().unwrap();
        }
    }

    /// SPEC §4.1: the seed prints 69, but 200万 over 10万–210万 is 95%, not 90%, so the linear
    /// template gives 70.5 for the seed's inputs.
    #[test]
    fn composite_seed_example_gives_70_5_not_69() {
        let m = template("composite").unwrap();
        let s = score(
            &m,
            &Inputs {
                values: [
                    ("sales_amount", Value::Number(2_000_000.0)),
                    ("sales_growth_yoy", Value::Number(25.0)),
                    ("collection_rate", Value::Number(92.0)),
                    ("return_rate", Value::Number(6.0)),
                    ("manager", Value::Number(80.0)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                events: HashMap::new(),
            },
        );
        let scores: Vec<f64> = s.breakdown.iter().map(|l| l.score).collect();
        assert_eq!(scores, [95.0, 100.0, 20.0, 0.0, 80.0]);
        let weighted: Vec<f64> = s.breakdown.iter().map(|l| l.weighted).collect();
        assert_eq!(weighted, [28.5, 30.0, 4.0, 0.0, 8.0]);
        assert_eq!(s.score, 70.5);
        assert_eq!(s.grade, "B");
        // the seed's own 69 comes back with its volume figure (90) in place of the linear 95
        let mut with_seed_volume = m.clone();
        with_seed_volume.criteria[0].normalize = Normalize::Bands {
            bands: vec![Band {
                min: 1_900_000.0,
                max: 2_050_000.0,
                score: 90.0,
            }],
        };
        let s = score(
            &with_seed_volume,
            &inputs(&[
                ("sales_amount", 2_000_000.0),
                ("sales_growth_yoy", 25.0),
                ("collection_rate", 92.0),
                ("return_rate", 6.0),
                ("manager", 80.0),
            ]),
        );
        assert_eq!(s.score, 69.0);
        // the seed's reversed example: 2% returns over 1–5% is 75 linearly (the seed says 80)
        let s = score(&m, &inputs(&[("return_rate", 2.0)]));
        assert_eq!(s.breakdown[3].score, 75.0);
        assert_eq!(s.breakdown[0].why, Why::Missing);
    }

    /// SPEC §4.2: the seed's table of four customers, their per-criterion scores entered as the
    /// assessor's scores under the criteria's codes, weighted 25/20/15/15/10/10/5.
    #[test]
    fn key_account_seed_examples() {
        let m = template("key_account").unwrap();
        let flat = &m;
        let table = [
            ([10.0, 8.0, 6.0, 9.0, 10.0, 10.0, 8.0], 8.75),
            ([10.0, 7.0, 5.0, 8.0, 8.0, 8.0, 7.0], 7.8),
            ([10.0, 5.0, 7.0, 6.0, 8.0, 4.0, 6.0], 6.95),
            ([8.0, 6.0, 8.0, 5.0, 7.0, 6.0, 5.0], 6.7),
        ];
        for (scores, expected) in table {
            let values: Vec<(&str, f64)> = flat
                .criteria
                .iter()
                .map(|c| c.code.as_str())
                .zip(scores)
                .collect();
            let s = score(flat, &inputs(&values));
            assert_eq!(s.score, expected, "{scores:?}");
            assert!(matches!(s.breakdown[0].why, Why::Assessed { .. }));
            let sum: f64 = s.breakdown.iter().map(|l| l.weighted).sum();
            assert!((sum - s.score).abs() < 1e-9);
        }
        assert_eq!(m.total_weight(), 100.0);
    }

    #[test]
    fn key_account_bands_rank_and_credit() {
        let m = template("key_account").unwrap();
        // 25 customers with amounts 1..=25 (in 万): the top ten score 9, the next ten 6.5
        let people: Vec<Inputs> = (1..=25)
            .map(|i| {
                let mut inp = inputs(&[
                    ("sales_amount", f64::from(i) * 10_000.0),
                    ("gross_margin", 12.0),
                    ("sales_growth_yoy", 7.0),
                    ("quote_success_rate", 30.0),
                    ("relationship", 8.0),
                    ("service_demand", 9.0),
                ]);
                inp.values.insert("credit", Value::Text("AAA".into()));
                inp
            })
            .collect();
        let refs: Vec<&Inputs> = people.iter().collect();
        let scored = score_all(&m, &refs);
        assert_eq!(scored[24].breakdown[0].score, 9.0);
        assert_eq!(
            scored[24].breakdown[0].why,
            Why::Rank {
                rank: 1,
                of: 25,
                band: 0
            }
        );
        assert_eq!(scored[10].breakdown[0].score, 6.5);
        assert_eq!(scored[0].breakdown[0].score, 2.5);
        // 25×9 + 20×9 + 15×6.5 + 15×10 + 10×9 + 10×8 + 5×9 = 867.5 → 8.675
        assert_eq!(scored[24].score, 8.675);
        assert_eq!(scored[24].grade, "A");
    }

    #[test]
    fn points_deduction_keeps_points_and_caps() {
        let m = template("points_deduction").unwrap();
        let mut a = inputs(&[
            ("sales_volume", 100.0),
            ("sales_amount", 100.0),
            ("gross_profit", 100.0),
        ]);
        a.events.insert("non_channel".into(), 1);
        a.events.insert("licence_display".into(), 1);
        a.events.insert("delivery_lapse".into(), 3);
        let b = inputs(&[
            ("sales_volume", 50.0),
            ("sales_amount", 50.0),
            ("gross_profit", 50.0),
        ]);
        let s = score_all(&m, &[&a, &b]);
        // a: best of two on contribution (60), integrity 20−15 = 5, service 10, delivery capped at 0
        let w: Vec<f64> = s[0].breakdown.iter().map(|l| l.weighted).collect();
        assert_eq!(w, [24.0, 12.0, 24.0, 5.0, 10.0, 0.0]);
        assert_eq!(s[0].score, 75.0);
        assert_eq!(
            s[0].breakdown[5].why,
            Why::Deducted {
                points: 10.0,
                max: 10.0,
                events: 3
            }
        );
        assert_eq!(s[1].score, 40.0);
        assert_eq!(s[1].grade, "E");
    }

    #[test]
    fn stored_breakdowns_read_back_the_same() {
        for code in TEMPLATE_CODES {
            let m = template(code).unwrap();
            let mut a = inputs(&[
                ("sales_amount", 2_000_000.0),
                ("sales_volume", 10.0),
                ("gross_profit", 3.0),
                ("gross_margin", 7.0),
                ("return_rate", 2.0),
                ("relationship", 12.0),
                ("trade_volume", 9.5),
            ]);
            a.values.insert("credit", Value::Text("BB".into()));
            a.events.insert("non_channel".into(), 1);
            let b = inputs(&[("sales_amount", 5.0), ("gross_margin", 1000.0)]);
            for s in score_all(&m, &[&a, &b]) {
                let back = read_breakdown(&m, &s.stored_breakdown()).unwrap();
                assert_eq!(back, s.breakdown, "{code}");
            }
        }
    }

    #[test]
    fn bad_models_say_what_and_where() {
        let base = template("composite").unwrap();
        let err = |f: &dyn Fn(&mut ScoringModel)| {
            let mut m = base.clone();
            f(&mut m);
            m.check().unwrap_err()
        };
        let e = err(&|m| m.criteria[1].weight = 0.0);
        assert_eq!(
            (e.field.as_str(), e.code),
            ("criteria[1].weight", "invalid_weight")
        );
        let e = err(&|m| m.criteria[2].weight = -3.0);
        assert_eq!(e.code, "invalid_weight");
        let e = err(&|m| m.criteria[0].input = "metric:nope".into());
        assert_eq!(
            (e.field.as_str(), e.code),
            ("criteria[0].input", "unknown_metric")
        );
        let e = err(&|m| m.criteria[0].normalize = Normalize::Linear { from: 5.0, to: 5.0 });
        assert_eq!(e.code, "empty_range");
        let band = |min, max| Band {
            min,
            max,
            score: 5.0,
        };
        let e = err(&|m| {
            m.criteria[4].normalize = Normalize::Bands {
                bands: vec![band(0.0, 60.0), band(50.0, 101.0)],
            }
        });
        assert_eq!(e.code, "overlap");
        assert_eq!(e.field, "criteria[4].normalize.bands[1].min");
        assert!(e.message.contains("from 50 to 60"), "{}", e.message);
        let e = err(&|m| {
            m.criteria[4].normalize = Normalize::Bands {
                bands: vec![band(60.0, 101.0), band(0.0, 50.0)],
            }
        });
        assert_eq!(e.code, "gap");
        assert_eq!(e.field, "criteria[4].normalize.bands[0].min");
        assert!(e.message.contains("50 to 60"), "{}", e.message);
        let e = err(&|m| m.grades.retain(|g| g.min > 0.0));
        assert_eq!(e.code, "gap");
        let e = err(&|m| m.criteria[1].code = "volume".into());
        assert_eq!(e.code, "duplicate");
        let e = err(&|m| {
            m.criteria[0].normalize = Normalize::Bands {
                bands: vec![Band {
                    min: 0.0,
                    max: 1.0,
                    score: 101.0,
                }],
            }
        });
        assert_eq!(e.code, "out_of_scale");
    }

    #[test]
    fn value_types_are_checked() {
        let m = template("key_account").unwrap();
        assert!(check_value("sales_amount", &Value::Number(3.0), [&m]).is_ok());
        assert_eq!(
            check_value("sales_amount", &Value::Text("x".into()), [&m])
                .unwrap_err()
                .code,
            "invalid_type"
        );
        assert!(check_value("credit", &Value::Text("AA".into()), [&m]).is_ok());
        assert!(check_value("credit", &Value::Number(9.0), [&m]).is_ok());
        assert!(check_value("trade_volume", &Value::Number(9.0), [&m]).is_ok());
        assert_eq!(
            check_value("credit", &Value::Text("Z".into()), [&m])
                .unwrap_err()
                .code,
            "invalid_choice"
        );
        assert_eq!(
            check_value("relationship", &Value::Text("good".into()), [&m])
                .unwrap_err()
                .code,
            "invalid_type"
        );
        assert_eq!(
            check_value("nonsense", &Value::Number(1.0), [&m])
                .unwrap_err()
                .code,
            "unknown_input"
        );
    }

    #[test]
    fn periods() {
        assert_eq!(
            Period::parse("p", "2026-03").unwrap().to_string(),
            "2026-03"
        );
        for bad in [
            "2026-3", "2026-13", "26-03", "2026/03", "2026-00", "abcd-ef",
        ] {
            assert!(Period::parse("p", bad).is_err(), "{bad}");
        }
        assert_eq!(
            Period::parse("p", "2026-01")
                .unwrap()
                .previous()
                .to_string(),
            "2025-12"
        );
    }

    #[test]
    fn abc_and_scale_tiers_on_examples() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let classes = abc(&values);
        assert_eq!(classes[19], Abc::A);
        assert_eq!(classes.iter().filter(|c| **c == Abc::A).count(), 1);
        assert_eq!(classes.iter().filter(|c| **c == Abc::B).count(), 3);
        let figures: Vec<(f64, f64)> = (1..=10).map(|i| (f64::from(i), f64::from(i))).collect();
        let t = scale_tiers(&figures);
        assert_eq!(t.iter().filter(|c| **c == ScaleTier::Large).count(), 2);
        assert_eq!(t.iter().filter(|c| **c == ScaleTier::Medium).count(), 6);
        assert_eq!(t[0], ScaleTier::Small);
    }

    #[test]
    fn lifecycle_first_match_wins() {
        let rules = default_lifecycle_rules();
        let f = |sales, batches, coll, ret, arrears, new| AnnualFigures {
            new_this_year: new,
            sales_amount: sales,
            last_year_sales_amount: sales,
            batches,
            collection_rate: coll,
            last_year_collection_rate: coll,
            return_rate: ret,
            arrears,
        };
        assert_eq!(
            lifecycle(&rules, &f(0.0, 0.0, 0.0, 0.0, 0.0, false)),
            Some("no_business")
        );
        assert_eq!(
            lifecycle(&rules, &f(0.0, 0.0, 0.0, 0.0, 5_000.0, false)),
            Some("pending")
        );
        assert_eq!(
            lifecycle(&rules, &f(10_000.0, 5.0, 90.0, 1.0, 30_000.0, false)),
            Some("dormant")
        );
        assert_eq!(
            lifecycle(&rules, &f(200_000.0, 5.0, 99.0, 1.0, 0.0, true)),
            Some("new_effective")
        );
        assert_eq!(
            lifecycle(&rules, &f(50_000.0, 5.0, 99.0, 1.0, 0.0, true)),
            Some("new_ineffective")
        );
        assert_eq!(
            lifecycle(&rules, &f(200_000.0, 5.0, 99.0, 1.0, 0.0, false)),
            Some("normal")
        );
        assert_eq!(
            lifecycle(&rules, &f(200_000.0, 5.0, 90.0, 1.0, 0.0, false)),
            Some("abnormal")
        );
        let mut halved = f(200_000.0, 5.0, 99.0, 1.0, 0.0, false);
        halved.last_year_sales_amount = 500_000.0;
        assert_eq!(lifecycle(&rules, &halved), Some("deteriorating"));
    }

    #[test]
    fn grading_settings_validation() {
        assert_eq!(GradingSettings::default().validate(), Ok(()));
        let with = |t: Vec<f64>| GradingSettings {
            star_thresholds: t,
            ..GradingSettings::default()
        };
        assert_eq!(
            with(vec![100.0, 100.0]).validate().unwrap_err().code,
            "not_ascending"
        );
        assert_eq!(with(vec![]).validate().unwrap_err().code, "out_of_range");
        assert_eq!(with(vec![0.0]).validate().unwrap_err().code, "out_of_range");
        assert_eq!(
            with(vec![50.0, 80.0, 500.0, 900.0, 2000.0]).validate(),
            Ok(())
        );
        let mut catch_all = GradingSettings::default();
        catch_all.lifecycle_rules.insert(
            1,
            LifecycleRule {
                category: "other".into(),
                all: vec![],
                any: vec![],
            },
        );
        let e = catch_all.validate().unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code),
            ("lifecycle_rules[1].all", "unreachable")
        );
        // as the last rule it is a fallback
        let last = catch_all.lifecycle_rules.remove(1);
        catch_all.lifecycle_rules.push(last);
        assert_eq!(catch_all.validate(), Ok(()));
        catch_all.lifecycle_rules[0].category = "  ".into();
        assert_eq!(catch_all.validate().unwrap_err().code, "invalid");
    }

    #[test]
    fn star_overrides() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let t = [100.0, 300.0, 1000.0];
        assert_eq!(star_level(350.0, &t, None, d("2026-03-01")), 2);
        let fixed = StarOverride {
            level: 5,
            until: Some(d("2026-03-31")),
        };
        assert_eq!(star_level(350.0, &t, Some(fixed), d("2026-03-31")), 5);
        assert_eq!(star_level(350.0, &t, Some(fixed), d("2026-04-01")), 2);
        let manual = StarOverride {
            level: 1,
            until: None,
        };
        assert_eq!(star_level(5000.0, &t, Some(manual), d("2030-01-01")), 1);
    }

    fn arb_model() -> impl Strategy<Value = (ScoringModel, Vec<bool>)> {
        let criterion = (1.0f64..50.0, any::<bool>(), 0.1f64..100.0, 0.1f64..100.0);
        (
            prop_oneof![Just(10.0), Just(100.0)],
            prop::collection::vec(criterion, 1..6),
        )
            .prop_map(|(scale, cs)| {
                let mut reversed = Vec::new();
                let criteria = cs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (weight, rev, a, span))| {
                        reversed.push(rev);
                        let (from, to) = if rev { (a + span, a) } else { (a, a + span) };
                        Criterion {
                            code: format!("c{i}"),
                            name: format!("c{i}"),
                            weight,
                            input: "manual".into(),
                            normalize: Normalize::Linear { from, to },
                            hint: None,
                        }
                    })
                    .collect();
                (
                    ScoringModel {
                        name: "m".into(),
                        scale,
                        criteria,
                        grades: vec![GradeBand {
                            min: 0.0,
                            grade: "C".into(),
                        }],
                    },
                    reversed,
                )
            })
    }

    proptest! {
        /// Whatever the inputs, the total lies within the scale and the lines add up to it.
        #[test]
        fn total_stays_within_scale((model, _) in arb_model(), xs in prop::collection::vec(-1e6f64..1e6, 6)) {
            let values: Vec<(String, f64)> = model.criteria.iter().zip(&xs).map(|(c, x)| (c.code.clone(), *x)).collect();
            let inp = Inputs { values: values.into_iter().map(|(k, v)| (k, Value::Number(v))).collect(), events: HashMap::new() };
            let s = score(&model, &inp);
            prop_assert!(s.score >= 0.0 && s.score <= model.scale);
            let sum: f64 = s.breakdown.iter().map(|l| l.weighted).sum();
            prop_assert!((sum - s.score).abs() < 1e-4);
        }

        /// Raising a forward criterion's input never lowers the total; raising a reversed one never raises it.
        #[test]
        fn monotone_in_each_criterion((model, reversed) in arb_model(), xs in prop::collection::vec(0f64..200.0, 6), which in 0usize..6, up in 0f64..100.0) {
            let which = which % model.criteria.len();
            let make = |bump: f64| {
                let values = model.criteria.iter().zip(&xs).enumerate().map(|(i, (c, x))| {
                    (c.code.clone(), Value::Number(if i == which { x + bump } else { *x }))
                }).collect();
                score(&model, &Inputs { values, events: HashMap::new() }).score
            };
            let (before, after) = (make(0.0), make(up));
            if reversed[which] {
                prop_assert!(after <= before + 1e-9, "{before} → {after}");
            } else {
                prop_assert!(after >= before - 1e-9, "{before} → {after}");
            }
        }

        /// Deductions never take a score below zero, however many events.
        #[test]
        fn deductions_never_below_zero(counts in prop::collection::vec(0u32..50, 5)) {
            let m = template("points_deduction").unwrap();
            let kinds = ["illegal_products", "non_channel", "obstruct_inspection", "settlement_failure", "delivery_lapse"];
            let inp = Inputs { values: Values::new(), events: kinds.iter().zip(&counts).map(|(k, n)| (k.to_string(), *n)).collect() };
            let s = score(&m, &inp);
            for line in &s.breakdown {
                prop_assert!(line.score >= 0.0 && line.weighted >= 0.0);
            }
            prop_assert!(s.score >= 0.0);
        }

        /// ABC classes and scale tiers give every customer exactly one class, in proportions
        /// no further from 5/15/80 and 20/60/20 than ties allow.
        #[test]
        fn classes_partition_the_population(values in prop::collection::vec(0u32..1000, 0..200)) {
            let v: Vec<f64> = values.iter().map(|x| f64::from(*x)).collect();
            let classes = abc(&v);
            prop_assert_eq!(classes.len(), v.len());
            // a better value never gets a worse class
            for i in 0..v.len() {
                for j in 0..v.len() {
                    if v[i] > v[j] {
                        prop_assert!(classes[i] as u8 <= classes[j] as u8);
                    }
                }
            }
            let figures: Vec<(f64, f64)> = v.iter().map(|x| (*x, 1000.0 - x)).collect();
            let t = scale_tiers(&figures);
            prop_assert_eq!(t.len(), v.len());
            let distinct: std::collections::BTreeSet<u32> = values.iter().copied().collect();
            if distinct.len() == values.len() && !values.is_empty() {
                let n = values.len() as f64;
                let a = classes.iter().filter(|c| **c == Abc::A).count() as f64;
                prop_assert!(a >= n * 0.05 && a < n * 0.05 + 1.0);
            }
        }
    }
}
