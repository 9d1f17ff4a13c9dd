//! Customer records (客户档案): kinds, importance, purchase intent, phones, search keys, duplicate
//! keys, custom fields, the public pool's rules and the import's header names. No I/O.

use crate::validate::{self, Invalid};
use chrono::{Datelike, Months, NaiveDate};
use pinyin::ToPinyin;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A closed set of codes with Chinese and English names, as the API and the pages show them.
macro_rules! codes {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = ($code:literal, $zh:literal, $en:literal)),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $code)] $variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub const CODES: &'static [&'static str] = &[$($code),*];

            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),* }
            }

            pub fn name_zh(self) -> &'static str {
                match self { $($name::$variant => $zh),* }
            }

            pub fn name_en(self) -> &'static str {
                match self { $($name::$variant => $en),* }
            }

            /// By code, or by its Chinese or English name (as spreadsheets write it).
            pub fn parse(s: &str) -> Option<$name> {
                let s = s.trim();
                Self::ALL.iter().copied().find(|v| {
                    v.code().eq_ignore_ascii_case(s) || v.name_zh() == s || v.name_en().eq_ignore_ascii_case(s)
                })
            }

            /// Parses a field's value, naming the field and the codes allowed when it fails.
            pub fn parse_field(field: &str, s: &str) -> Result<$name, Invalid> {
                Self::parse(s).ok_or_else(|| Invalid::new(
                    field,
                    "invalid_choice",
                    format!("'{s}' is not one of {}", Self::CODES.join(", ")),
                ))
            }
        }
    };
}

codes! {
    /// 客户 / 潜在客户 / 代理 / 竞争对手
    CustomerKind {
        Customer = ("customer", "客户", "Customer"),
        Lead = ("lead", "潜在客户", "Lead"),
        Agent = ("agent", "代理", "Agent"),
        Competitor = ("competitor", "竞争对手", "Competitor"),
    }
}

codes! {
    /// 重要程度
    Importance {
        Urgent = ("urgent", "马上要做", "Act now"),
        Considering = ("considering", "考虑中", "Considering"),
        Watching = ("watching", "关注", "Watching"),
        NotThisYear = ("not_this_year", "一年之内不会做", "Not within a year"),
        Done = ("done", "已做", "Done"),
        Unknown = ("unknown", "尚未了解", "Not yet known"),
    }
}

codes! {
    /// 意向等级: when the customer is expected to buy.
    Intent {
        A = ("A", "A (3个月内)", "A (within 3 months)"),
        B = ("B", "B (4–6个月)", "B (4–6 months)"),
        C = ("C", "C (7–12个月)", "C (7–12 months)"),
        D = ("D", "D (12个月内不会)", "D (not within 12 months)"),
    }
}

impl Intent {
    /// The last day of the expected-close window for an intent given on `on`; D has none.
    pub fn expected_close_by(self, on: NaiveDate) -> Option<NaiveDate> {
        let months = match self {
            Intent::A => 3,
            Intent::B => 6,
            Intent::C => 12,
            Intent::D => return None,
        };
        on.checked_add_months(Months::new(months))
    }
}

codes! {
    /// 沟通记录的方式
    ActivityKind {
        Call = ("call", "电话", "Call"),
        Visit = ("visit", "拜访", "Visit"),
        Email = ("email", "邮件", "E-mail"),
        Meeting = ("meeting", "会议", "Meeting"),
        Note = ("note", "备注", "Note"),
    }
}

codes! {
    /// A custom field's type.
    FieldKind {
        Text = ("text", "文本", "Text"),
        Number = ("number", "数字", "Number"),
        Date = ("date", "日期", "Date"),
        Choice = ("choice", "选项", "Choice"),
    }
}

codes! {
    Gender {
        Male = ("male", "男", "Male"),
        Female = ("female", "女", "Female"),
    }
}

codes! {
    /// What an import does with a row that looks like a customer already on file.
    DuplicateMode {
        Skip = ("skip", "跳过", "Skip"),
        Update = ("update", "更新", "Update"),
        ImportAnyway = ("import_anyway", "仍然导入", "Import anyway"),
    }
}

// ---------------------------------------------------------------- phones

/// A phone number as written (area code, extension kept) and the digits that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// Tidied for display: `13800138000`, `010-62345678`, `010-62345678-123`.
    pub text: String,
    /// National digits without country code or extension: what duplicates and caller-ID match on.
    pub digits: String,
    pub extension: Option<String>,
}

impl Phone {
    /// Mobile numbers (11 digits, 1[3-9]…), landlines with or without an area code (0xx),
    /// 400/800 service numbers and international numbers (+…). Extensions follow `-`, `转`, `ext`, `x` or `#`.
    pub fn parse(field: &str, value: &str) -> Result<Phone, Invalid> {
        let bad = |code: &'static str, why: &str| {
            Invalid::new(
                field,
                code,
                format!("'{}' is not a phone number: {why}", value.trim()),
            )
        };
        let v = value.trim();
        if v.is_empty() {
            return Err(Invalid::new(
                field,
                "required",
                format!("{field} must not be empty"),
            ));
        }
        if v.chars().count() > 40 {
            return Err(bad("invalid_phone", "it is too long"));
        }
        // split off an extension written with a word or mark
        let lower = v.to_lowercase();
        let (main, ext) = ["转", "ext.", "ext", "x", "#", "分机"]
            .iter()
            .find_map(|m| {
                lower
                    .split_once(m)
                    .map(|(a, b)| (a.to_string(), Some(b.to_string())))
            })
            .unwrap_or((lower.clone(), None));
        if main
            .chars()
            .any(|c| !(c.is_ascii_digit() || " -+()（）".contains(c)))
        {
            return Err(bad(
                "invalid_phone",
                "only digits, spaces, '-', '+' and brackets may appear",
            ));
        }
        let international =
            main.trim_start().starts_with('+') || main.trim_start().starts_with("00");
        let groups: Vec<String> = main
            .split(|c: char| !c.is_ascii_digit())
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect();
        let mut all: String = groups.concat();
        let mut ext = ext
            .map(|e| e.chars().filter(char::is_ascii_digit).collect::<String>())
            .filter(|e| !e.is_empty());
        // 010-62345678-123: a short last group after a full landline is its extension
        if ext.is_none() && groups.len() >= 3 && groups[0].starts_with('0') {
            let last = groups.last().expect("three groups");
            let before = groups[..groups.len() - 1].concat();
            if last.len() <= 5 && before.len() >= 10 {
                ext = Some(last.clone());
                all = before;
            }
        }
        let national = if international {
            let rest = all.strip_prefix("00").unwrap_or(&all);
            match rest.strip_prefix("86") {
                Some(cn) if cn.len() >= 10 => cn.to_string(),
                _ => {
                    if !(8..=15).contains(&rest.len()) {
                        return Err(bad(
                            "invalid_phone",
                            "an international number has 8 to 15 digits",
                        ));
                    }
                    return Ok(Phone {
                        text: format!("+{rest}"),
                        digits: rest.to_string(),
                        extension: ext,
                    });
                }
            }
        } else {
            all
        };
        // a Chinese landline's area code loses its 0 after +86
        let national = if international && !national.starts_with('1') && !national.starts_with('0')
        {
            format!("0{national}")
        } else {
            national
        };
        let text = if national.starts_with('1') {
            if national.len() != 11 {
                return Err(bad("invalid_phone", "a mobile number has 11 digits"));
            }
            if !matches!(national.as_bytes()[1], b'3'..=b'9') {
                return Err(bad("invalid_phone", "mobile numbers begin with 13 to 19"));
            }
            national.clone()
        } else if national.starts_with("400") || national.starts_with("800") {
            if national.len() != 10 {
                return Err(bad("invalid_phone", "a 400/800 number has 10 digits"));
            }
            national.clone()
        } else if national.starts_with('0') {
            if !(10..=12).contains(&national.len()) {
                return Err(bad(
                    "invalid_phone",
                    "a landline with its area code has 10 to 12 digits",
                ));
            }
            // 010, 02x: three-digit area codes; the others have four
            let split = if national.starts_with("01") || national.starts_with("02") {
                3
            } else {
                4
            };
            format!("{}-{}", &national[..split], &national[split..])
        } else {
            if !(7..=8).contains(&national.len()) {
                return Err(bad("invalid_phone", "a local number has 7 or 8 digits"));
            }
            national.clone()
        };
        if ext.as_ref().is_some_and(|e| e.len() > 6) {
            return Err(bad("invalid_phone", "an extension has at most 6 digits"));
        }
        Ok(Phone {
            text: match &ext {
                Some(e) => format!("{text}-{e}"),
                None => text,
            },
            digits: national,
            extension: ext,
        })
    }

    /// A landline without its area code (data quality asks for one).
    pub fn lacks_area_code(&self) -> bool {
        (7..=8).contains(&self.digits.len()) && !self.digits.starts_with('0')
    }
}

/// The digits an incoming number is looked up by: as [`Phone::digits`] when it parses, else
/// whatever digits it has.
pub fn phone_key(value: &str) -> String {
    Phone::parse("phone", value)
        .map(|p| p.digits)
        .unwrap_or_else(|_| value.chars().filter(char::is_ascii_digit).collect())
}

// ---------------------------------------------------------------- search

/// Index terms are cut to this many characters; a longer query is checked against the full text.
pub const MAX_TERM_CHARS: usize = 16;

/// Search terms are stored in parts of 2^15 customer ids (migration 0017 divides by the same
/// 32,768): a new customer's terms go to the newest part, a small tree, instead of pages all
/// over one large index.
pub const TERM_PART_BITS: u32 = 15;

/// The part of the term index a customer's terms are kept in.
pub fn term_part(customer_id: i64) -> i64 {
    customer_id >> TERM_PART_BITS
}

/// Lower case, without spaces and the punctuation people type in names and numbers.
pub fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| {
            !c.is_whitespace()
                && !matches!(
                    c,
                    '-' | '_'
                        | '('
                        | ')'
                        | '（'
                        | '）'
                        | '.'
                        | '·'
                        | ','
                        | '，'
                        | '、'
                        | '/'
                        | '\''
                        | '"'
                )
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Pinyin initials (张三 → zs; ABC科技 → abckj); characters without pinyin keep their letter or digit.
pub fn initials(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if let Some(p) = c.to_pinyin() {
            out.push_str(p.first_letter());
        } else if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Whether a text has any Chinese character (its initials are worth indexing).
fn has_han(s: &str) -> bool {
    s.chars().any(|c| c.to_pinyin().is_some())
}

/// What a customer is found by: names (and their pinyin initials), company, code, phone digits.
#[derive(Debug, Default)]
pub struct SearchSource<'a> {
    pub names: Vec<&'a str>,
    pub phones: Vec<&'a str>,
}

/// The index terms of a customer: every suffix (cut to [`MAX_TERM_CHARS`]) of every key, so that
/// "any part of" a key is a prefix of one term, i.e. one index range. Phone suffixes shorter than
/// three digits find nothing useful and are left out.
pub fn search_terms(src: &SearchSource) -> Vec<String> {
    let mut keys: Vec<(String, usize)> = Vec::new();
    for n in &src.names {
        let k = normalise(n);
        if k.is_empty() {
            continue;
        }
        if has_han(n) {
            let i = initials(n);
            if i != k && !i.is_empty() {
                keys.push((i, 1));
            }
        }
        keys.push((k, 1));
    }
    for p in &src.phones {
        let digits: String = p.chars().filter(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            keys.push((digits, 3));
        }
    }
    let mut terms: Vec<String> = Vec::new();
    for (key, min) in keys {
        push_suffixes(&mut terms, &key, min);
    }
    terms.sort();
    terms.dedup();
    terms
}

/// Every term a customer whose [`search_text`] is `text` can have in the index: the suffixes of
/// each of its keys, phones' short ones too. A superset of [`search_terms`], found from the
/// customer's row alone, so the index needs no second tree by customer to delete its terms.
pub fn search_text_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for key in text.split('\u{1}') {
        push_suffixes(&mut terms, key, 1);
    }
    terms.sort();
    terms.dedup();
    terms
}

/// Pushes the suffixes of `key` at least `min` characters long, cut to [`MAX_TERM_CHARS`].
fn push_suffixes(terms: &mut Vec<String>, key: &str, min: usize) {
    let chars: Vec<char> = key.chars().collect();
    for start in 0..(chars.len() + 1).saturating_sub(min) {
        let end = (start + MAX_TERM_CHARS).min(chars.len());
        terms.push(chars[start..end].iter().collect());
    }
}

/// The full text a long query is checked against (keys joined by a separator no query contains).
pub fn search_text(src: &SearchSource) -> String {
    let mut parts: Vec<String> = Vec::new();
    for n in &src.names {
        parts.push(normalise(n));
        if has_han(n) {
            parts.push(initials(n));
        }
    }
    for p in &src.phones {
        parts.push(p.chars().filter(char::is_ascii_digit).collect());
    }
    parts.retain(|p| !p.is_empty());
    format!("\u{1}{}\u{1}", parts.join("\u{1}"))
}

/// A search box's text as the index reads it: the prefix to look up and, when the query is longer
/// than an index term, the whole normalised query to check too. None for an empty query.
pub fn search_query(q: &str) -> Option<(String, Option<String>)> {
    let n = normalise(q);
    if n.is_empty() {
        return None;
    }
    let chars: Vec<char> = n.chars().collect();
    if chars.len() > MAX_TERM_CHARS {
        Some((chars[..MAX_TERM_CHARS].iter().collect(), Some(n)))
    } else {
        Some((n, None))
    }
}

/// Same name and company (normalised): the second duplicate rule besides the same phone.
pub fn name_company_key(name: &str, company: Option<&str>) -> String {
    format!(
        "{}|{}",
        normalise(name),
        normalise(company.unwrap_or_default())
    )
}

// ---------------------------------------------------------------- dates

/// `YYYY-MM-DD`, also `YYYY/MM/DD`, `YYYY.MM.DD`, `YYYY年MM月DD日` and `YYYYMMDD`.
pub fn date(field: &str, value: &str) -> Result<NaiveDate, Invalid> {
    let v = value.trim();
    let cleaned: String = v
        .replace(['/', '.', '年', '月'], "-")
        .replace('日', "")
        .trim_end_matches('-')
        .to_string();
    NaiveDate::parse_from_str(&cleaned, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&cleaned, "%Y%m%d"))
        .ok()
        .filter(|d| (1900..=2200).contains(&d.year()))
        .ok_or_else(|| {
            Invalid::new(
                field,
                "invalid_date",
                format!("'{v}' is not a date like 2026-03-01"),
            )
        })
}

/// An Excel serial day number (1900 date system) as a date: Excel stores dates that way.
pub fn excel_date(serial: f64) -> Option<NaiveDate> {
    if !(1.0..=2_958_465.0).contains(&serial) {
        return None;
    }
    // day 60 is Excel's phantom 1900-02-29; counting from 1899-12-30 is right after it
    NaiveDate::from_ymd_opt(1899, 12, 30)?
        .checked_add_days(chrono::Days::new(serial.trunc() as u64))
}

// ---------------------------------------------------------------- custom fields

/// A field an admin added for the customers of an org and its subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    pub code: String,
    pub label: String,
    pub kind: FieldKind,
    #[serde(default)]
    pub choices: Vec<String>,
    #[serde(default)]
    pub required: bool,
}

impl FieldDef {
    pub fn validate(&self) -> Result<(), Invalid> {
        validate::code("code", &self.code, 32)?;
        validate::required_text("label", &self.label, 50)?;
        if self.kind == FieldKind::Choice && self.choices.is_empty() {
            return Err(Invalid::new(
                "choices",
                "required",
                "a choice field needs its choices",
            ));
        }
        for c in &self.choices {
            validate::required_text("choices", c, 50)?;
        }
        Ok(())
    }

    /// Checks and tidies a value (numbers and dates also come as text from spreadsheets);
    /// Null means no value.
    pub fn check(&self, value: &Value) -> Result<Value, Invalid> {
        let field = format!("custom.{}", self.code);
        let text = match value {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
                return Err(Invalid::new(
                    &field,
                    "invalid_type",
                    format!("{} takes a {}", self.label, self.kind.code()),
                ))
            }
        };
        let Some(text) = text else {
            if self.required {
                return Err(Invalid::new(
                    &field,
                    "required",
                    format!("{} is required", self.label),
                ));
            }
            return Ok(Value::Null);
        };
        match self.kind {
            FieldKind::Text => Ok(Value::String(validate::required_text(&field, &text, 200)?)),
            FieldKind::Number => text
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| {
                    Invalid::new(
                        &field,
                        "invalid_type",
                        format!("{} takes a number, not '{text}'", self.label),
                    )
                }),
            FieldKind::Date => {
                let d = match text.parse::<f64>() {
                    Ok(serial) => excel_date(serial).ok_or_else(|| {
                        Invalid::new(&field, "invalid_date", format!("'{text}' is not a date"))
                    })?,
                    Err(_) => date(&field, &text)?,
                };
                Ok(Value::String(d.format("%Y-%m-%d").to_string()))
            }
            FieldKind::Choice => {
                if self.choices.contains(&text) {
                    Ok(Value::String(text))
                } else {
                    Err(Invalid::new(
                        &field,
                        "invalid_choice",
                        format!("'{text}' is not one of {}", self.choices.join(", ")),
                    ))
                }
            }
        }
    }
}

// ---------------------------------------------------------------- the public pool

/// 公海 rules for an org and its subtree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSettings {
    /// Customers without a follow-up (or claim, or assignment) for this many days return to the
    /// pool; None: they never return by themselves.
    pub return_after_days: Option<u32>,
    /// How many customers one rep may own through claims from the pool at a time.
    pub claim_limit: u32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            return_after_days: None,
            claim_limit: 100,
        }
    }
}

impl PoolSettings {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.return_after_days.is_some_and(|d| d == 0 || d > 3650) {
            return Err(Invalid::new(
                "return_after_days",
                "out_of_range",
                "return_after_days must be between 1 and 3650",
            ));
        }
        if self.claim_limit > 100_000 {
            return Err(Invalid::new(
                "claim_limit",
                "out_of_range",
                "claim_limit must be at most 100000",
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- import headers

/// The field a spreadsheet column is for, from its header (Chinese or English, as people write it).
pub fn header_field(header: &str) -> Option<&'static str> {
    let h = normalise(header).replace(['*', '：', ':'], "");
    let f = match h.as_str() {
        "客户名称" | "客户姓名" | "姓名" | "客户" | "name" | "customername" | "customer" => {
            "name"
        }
        "单位名称" | "公司名称" | "单位" | "公司" | "企业名称" | "company" | "companyname"
        | "organization" => "company",
        "联系人" | "联系人姓名" | "contact" | "contactname" | "contactperson" => {
            "contact_name"
        }
        "手机" | "手机号" | "手机号码" | "电话" | "联系电话" | "电话号码" | "固话" | "mobile"
        | "phone" | "tel" | "telephone" | "phonenumber" => "phone",
        "邮箱" | "电子邮箱" | "电子邮件" | "email" | "e-mail" | "mail" => "email",
        "地址" | "联系地址" | "通讯地址" | "address" => "address",
        "行业" | "所属行业" | "industry" => "industry",
        "地区" | "区域" | "所在地区" | "region" | "area" => "region",
        "客户类型" | "类型" | "客户类别" | "kind" | "type" | "customertype" => "kind",
        "生日" | "出生日期" | "birthday" | "dateofbirth" => "birthday",
        "意向等级" | "意向" | "购买意向" | "intent" | "purchaseintent" => "intent",
        "重要程度" | "importance" => "importance",
        "来源" | "客户来源" | "source" => "source",
        "客户组" | "分组" | "group" | "customergroup" => "customer_group",
        "标签" | "tags" | "tag" => "tags",
        "备注" | "说明" | "notes" | "note" | "remark" | "remarks" | "comment" => "notes",
        "客户编号" | "编号" | "客户代码" | "code" | "customerno" | "customercode" | "no" => {
            "code"
        }
        "职务" | "职位" | "title" | "position" | "jobtitle" => "contact_title",
        "部门" | "department" | "dept" => "contact_department",
        "爱好" | "兴趣爱好" | "hobbies" => "hobbies",
        _ => return None,
    };
    Some(f)
}

/// Every field an import column may be mapped to.
pub const IMPORT_FIELDS: &[&str] = &[
    "name",
    "company",
    "contact_name",
    "phone",
    "email",
    "address",
    "industry",
    "region",
    "kind",
    "birthday",
    "intent",
    "importance",
    "source",
    "customer_group",
    "tags",
    "notes",
    "code",
    "contact_title",
    "contact_department",
    "hobbies",
];

/// The header row of a sheet: the first of its top rows where at least two cells name known
/// fields (a title row above the header is common). Answers the row's index.
pub fn find_header_row(rows: &[Vec<String>]) -> Option<usize> {
    rows.iter()
        .take(20)
        .position(|r| r.iter().filter(|c| header_field(c).is_some()).count() >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_parse_and_explain() {
        let m = Phone::parse("phone", "138 0013 8000").unwrap();
        assert_eq!(
            (m.text.as_str(), m.digits.as_str()),
            ("13800138000", "13800138000")
        );
        assert_eq!(
            Phone::parse("phone", "+86 138-0013-8000").unwrap().digits,
            "13800138000"
        );
        let l = Phone::parse("phone", "010-62345678转123").unwrap();
        assert_eq!(
            (l.text.as_str(), l.digits.as_str(), l.extension.as_deref()),
            ("010-62345678-123", "01062345678", Some("123"))
        );
        assert_eq!(
            Phone::parse("phone", "(0755)8888 6666").unwrap().text,
            "0755-88886666"
        );
        assert_eq!(
            Phone::parse("phone", "010-62345678-8")
                .unwrap()
                .extension
                .as_deref(),
            Some("8")
        );
        assert!(Phone::parse("phone", "62345678").unwrap().lacks_area_code());
        assert_eq!(
            Phone::parse("phone", "1380013800").unwrap_err().code,
            "invalid_phone"
        );
        assert_eq!(
            Phone::parse("phone", "abc").unwrap_err().code,
            "invalid_phone"
        );
        assert_eq!(
            Phone::parse("phone", "12800138000").unwrap_err().code,
            "invalid_phone"
        );
        assert_eq!(phone_key("+86 13800138000"), "13800138000");
    }

    #[test]
    fn search_terms_find_any_part_and_initials() {
        let src = SearchSource {
            names: vec!["张三", "北京华为 技术有限公司"],
            phones: vec!["13800138000"],
        };
        let terms = search_terms(&src);
        for q in [
            "张三",
            "三",
            "zs",
            "s",
            "华为",
            "hw",
            "bjhwjsyxgs",
            "138001",
            "8000",
            "有限公司",
        ] {
            let (prefix, _) = search_query(q).unwrap();
            assert!(
                terms.iter().any(|t| t.starts_with(&prefix)),
                "{q} not found in {terms:?}"
            );
        }
        assert!(
            !terms.iter().any(|t| t == "00"),
            "short phone suffixes are left out"
        );
        assert_eq!(initials("ABC科技"), "abckj");
        let long = "北京市海淀区中关村大街一号院二号楼";
        let (prefix, full) = search_query(long).unwrap();
        assert_eq!(prefix.chars().count(), MAX_TERM_CHARS);
        assert!(full.is_some());
        assert!(search_query("  ").is_none());
        assert_eq!(
            name_company_key(" 张 三", Some("ABC")),
            name_company_key("张三", Some("abc"))
        );
    }

    proptest::proptest! {
        #[test]
        fn a_customers_terms_are_found_from_its_search_text(
            names in proptest::collection::vec("[张三李四王五北京科技有限公司abcXY 12-]{0,24}", 0..4),
            phones in proptest::collection::vec("[0-9]{0,14}", 0..3),
        ) {
            let src = SearchSource {
                names: names.iter().map(String::as_str).collect(),
                phones: phones.iter().map(String::as_str).collect(),
            };
            let all = search_text_terms(&search_text(&src));
            for t in search_terms(&src) {
                proptest::prop_assert!(all.binary_search(&t).is_ok(), "{} missing from {:?}", t, all);
            }
        }
    }

    #[test]
    fn dates_and_excel_serials() {
        assert_eq!(
            date("birthday", "1990/3/5").unwrap().to_string(),
            "1990-03-05"
        );
        assert_eq!(
            date("birthday", "1990年3月5日").unwrap().to_string(),
            "1990-03-05"
        );
        assert!(date("birthday", "1990-13-01").is_err());
        assert_eq!(excel_date(45658.0).unwrap().to_string(), "2025-01-01");
        assert_eq!(
            Intent::A
                .expected_close_by(NaiveDate::from_ymd_opt(2026, 1, 31).unwrap())
                .unwrap()
                .to_string(),
            "2026-04-30"
        );
        assert_eq!(
            Intent::D.expected_close_by(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()),
            None
        );
    }

    #[test]
    fn codes_read_chinese_and_english() {
        assert_eq!(CustomerKind::parse("潜在客户"), Some(CustomerKind::Lead));
        assert_eq!(CustomerKind::parse("Agent"), Some(CustomerKind::Agent));
        assert_eq!(
            Importance::parse("一年之内不会做"),
            Some(Importance::NotThisYear)
        );
        assert_eq!(Intent::parse("a"), Some(Intent::A));
        assert_eq!(
            CustomerKind::parse_field("kind", "x").unwrap_err().code,
            "invalid_choice"
        );
    }

    #[test]
    fn custom_values_are_checked_by_kind() {
        let num = FieldDef {
            code: "engine_no".into(),
            label: "排量".into(),
            kind: FieldKind::Number,
            choices: vec![],
            required: true,
        };
        assert_eq!(
            num.check(&Value::from("1.5")).unwrap(),
            serde_json::json!(1.5)
        );
        assert_eq!(
            num.check(&Value::from("abc")).unwrap_err().code,
            "invalid_type"
        );
        assert_eq!(num.check(&Value::Null).unwrap_err().code, "required");
        let date_field = FieldDef {
            kind: FieldKind::Date,
            required: false,
            ..num.clone()
        };
        assert_eq!(
            date_field.check(&Value::from(45658)).unwrap(),
            Value::from("2025-01-01")
        );
        assert_eq!(date_field.check(&Value::Null).unwrap(), Value::Null);
        let choice = FieldDef {
            kind: FieldKind::Choice,
            choices: vec!["红".into(), "蓝".into()],
            ..num
        };
        assert_eq!(
            choice.check(&Value::from("绿")).unwrap_err().code,
            "invalid_choice"
        );
    }

    #[test]
    fn header_row_is_found_below_a_title() {
        let rows = vec![
            vec!["2026年客户名单".to_string(), String::new()],
            vec!["客户名称".into(), "联系电话".into(), "备注".into()],
        ];
        assert_eq!(find_header_row(&rows), Some(1));
        assert_eq!(header_field("Customer Name"), Some("name"));
        assert_eq!(header_field("电子邮箱"), Some("email"));
        assert_eq!(header_field("发动机号"), None);
    }
}
