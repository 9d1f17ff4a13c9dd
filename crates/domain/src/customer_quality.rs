//! 有效客户判断标准: the completeness rules an org sets for its customer records, and the quality
//! score of one customer under them (the share of the rules' checks it passes, 0–100).

use crate::customers::Phone;
use crate::Invalid;
use serde::{Deserialize, Serialize};

/// Customer fields a rule may require to be filled.
pub const REQUIRABLE_FIELDS: &[&str] = &[
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

/// Words in a contact's title that make him a department head (部门负责人).
const HEAD_TITLES: &[&str] = &[
    "经理",
    "主任",
    "主管",
    "总监",
    "负责人",
    "部长",
    "处长",
    "科长",
    "厂长",
    "院长",
    "校长",
    "董事",
    "总",
    "head",
    "manager",
    "director",
    "chief",
    "lead",
];

/// An org's completeness rules; its subtree inherits them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityRules {
    /// Customer fields that must be filled (see [`REQUIRABLE_FIELDS`]).
    pub required_fields: Vec<String>,
    /// Every landline of the customer and its contacts carries its area code (mobiles pass).
    pub phone_area_code: bool,
    /// At least one contact is a department head (经理, 主任, 总监…) with full details: name,
    /// department, title, a phone and an e-mail.
    pub department_head: bool,
    /// At least this many contacts (0: no such rule).
    pub min_contacts: u32,
}

impl Default for QualityRules {
    fn default() -> Self {
        QualityRules {
            required_fields: vec!["phone".into(), "address".into(), "industry".into()],
            phone_area_code: true,
            department_head: true,
            min_contacts: 1,
        }
    }
}

impl QualityRules {
    pub fn validate(&mut self) -> Result<(), Invalid> {
        for f in &mut self.required_fields {
            *f = f.trim().to_string();
            if !REQUIRABLE_FIELDS.contains(&f.as_str()) {
                return Err(Invalid::new(
                    "required_fields",
                    "invalid_choice",
                    format!(
                        "'{f}' is not a field a rule may require (one of {})",
                        REQUIRABLE_FIELDS.join(", ")
                    ),
                ));
            }
        }
        self.required_fields.sort();
        self.required_fields.dedup();
        if self.min_contacts > 100 {
            return Err(Invalid::new(
                "min_contacts",
                "out_of_range",
                "min_contacts must be between 0 and 100",
            ));
        }
        Ok(())
    }

    /// How many checks a customer is measured by.
    pub fn checks(&self) -> usize {
        self.required_fields.len()
            + usize::from(self.phone_area_code)
            + usize::from(self.department_head)
            + usize::from(self.min_contacts > 0)
    }
}

/// A contact as the rules read it.
#[derive(Debug, Default, Clone)]
pub struct QualityContact {
    pub name: String,
    pub department: Option<String>,
    pub title: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
}

/// A customer as the rules read it: its fields by name, its own phone, its contacts.
#[derive(Debug, Default, Clone)]
pub struct QualityInput {
    pub fields: Vec<(&'static str, Option<String>)>,
    pub phone: Option<String>,
    pub contacts: Vec<QualityContact>,
}

/// One customer under the rules: its score (0–100) and the checks it fails, as codes:
/// `missing.<field>`, `phone_area_code`, `department_head`, `min_contacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    pub score: u32,
    pub failed: Vec<String>,
}

fn filled(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.trim().is_empty())
}

fn is_head(title: &str) -> bool {
    let t = title.to_lowercase();
    HEAD_TITLES.iter().any(|w| t.contains(w))
}

pub fn assess(rules: &QualityRules, c: &QualityInput) -> Assessment {
    let mut failed: Vec<String> = Vec::new();
    for f in &rules.required_fields {
        let ok = c
            .fields
            .iter()
            .find(|(name, _)| name == f)
            .is_some_and(|(_, v)| filled(v));
        if !ok {
            failed.push(format!("missing.{f}"));
        }
    }
    if rules.phone_area_code {
        let lacks = c
            .phone
            .iter()
            .chain(c.contacts.iter().flat_map(|k| k.phone.iter()))
            .filter_map(|p| Phone::parse("phone", p).ok())
            .any(|p| p.lacks_area_code());
        if lacks {
            failed.push("phone_area_code".into());
        }
    }
    if rules.department_head {
        let ok = c.contacts.iter().any(|k| {
            !k.name.trim().is_empty()
                && filled(&k.department)
                && k.title.as_deref().is_some_and(is_head)
                && (filled(&k.phone) || filled(&k.mobile))
                && filled(&k.email)
        });
        if !ok {
            failed.push("department_head".into());
        }
    }
    if rules.min_contacts > 0 && c.contacts.len() < rules.min_contacts as usize {
        failed.push("min_contacts".into());
    }
    let checks = rules.checks();
    let score = if checks == 0 {
        100
    } else {
        // rounded to the nearest whole point
        (((checks - failed.len()) * 200 + checks) / (2 * checks)) as u32
    };
    Assessment { score, failed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> QualityContact {
        QualityContact {
            name: "李四".into(),
            department: Some("采购部".into()),
            title: Some("采购部经理".into()),
            phone: Some("010-62345678".into()),
            mobile: None,
            email: Some("li@example.com".into()),
        }
    }

    #[test]
    fn full_record_scores_100_and_each_gap_costs_its_share() {
        let rules = QualityRules::default(); // 3 fields + area code + head + min contacts = 6 checks
        let mut c = QualityInput {
            fields: vec![
                ("phone", Some("13800138000".into())),
                ("address", Some("北京市海淀区".into())),
                ("industry", Some("制造".into())),
            ],
            phone: Some("13800138000".into()),
            contacts: vec![head()],
        };
        assert_eq!(
            assess(&rules, &c),
            Assessment {
                score: 100,
                failed: vec![]
            }
        );
        // a landline without area code: 5 of 6 → 83
        c.contacts[0].phone = Some("62345678".into());
        let a = assess(&rules, &c);
        assert_eq!(a.score, 83);
        assert_eq!(a.failed, vec!["phone_area_code"]);
        // and no e-mail: the head is no longer complete: 4 of 6 → 67
        c.contacts[0].email = None;
        assert_eq!(assess(&rules, &c).score, 67);
        // a clerk is not a head
        c.contacts[0].email = Some("li@example.com".into());
        c.contacts[0].phone = Some("010-62345678".into());
        c.contacts[0].title = Some("文员".into());
        assert_eq!(assess(&rules, &c).failed, vec!["department_head"]);
    }

    #[test]
    fn empty_customer_and_empty_rules() {
        let c = QualityInput::default();
        let a = assess(&QualityRules::default(), &c);
        assert_eq!(
            a.failed,
            vec![
                "missing.phone",
                "missing.address",
                "missing.industry",
                "department_head",
                "min_contacts"
            ]
        );
        // 1 of 6 (no landline lacks an area code) → 17
        assert_eq!(a.score, 17);
        let none = QualityRules {
            required_fields: vec![],
            phone_area_code: false,
            department_head: false,
            min_contacts: 0,
        };
        assert_eq!(assess(&none, &c).score, 100);
    }

    #[test]
    fn rules_are_checked() {
        let mut r = QualityRules {
            required_fields: vec!["nickname".into()],
            ..QualityRules::default()
        };
        assert_eq!(r.validate().unwrap_err().code, "invalid_choice");
        r.required_fields = vec![" email".into(), "email".into()];
        r.validate().unwrap();
        assert_eq!(r.required_fields, vec!["email"]);
        r.min_contacts = 101;
        assert_eq!(r.validate().unwrap_err().code, "out_of_range");
    }
}
