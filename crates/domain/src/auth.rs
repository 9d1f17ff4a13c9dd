//! Permissions, data levels, password hashing and access tokens.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One item of the permission catalogue: a stable code and its Chinese and English names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Permission {
    pub code: &'static str,
    pub name_zh: &'static str,
    pub name_en: &'static str,
    /// The module the item belongs to, for grouping the ticks on the role page.
    pub module: &'static str,
}

macro_rules! catalogue {
    ($($module:literal => [$(($code:literal, $zh:literal, $en:literal)),* $(,)?]),* $(,)?) => {
        pub const PERMISSIONS: &[Permission] = &[
            $($(Permission { code: $code, name_zh: $zh, name_en: $en, module: $module },)*)*
        ];
    };
}

catalogue! {
    "platform" => [
        ("org.view", "查看机构", "View orgs"),
        ("org.manage", "管理机构", "Manage orgs"),
        ("user.view", "查看职员", "View staff"),
        ("user.manage", "管理职员与账号", "Manage staff and accounts"),
        ("role.manage", "管理角色与权限", "Manage roles and permissions"),
        ("audit.view", "查看审计日志", "View the audit log"),
        ("settings.manage", "参数设置", "Manage settings"),
    ],
    "evaluation" => [
        ("window.manage", "管理窗口与业务", "Manage windows and business types"),
        ("terminal.manage", "管理评价器", "Manage terminals"),
        ("monitor.view", "实时监控", "Live monitor"),
        ("stats.view", "查看统计", "View statistics"),
        ("stats.export", "导出统计", "Export statistics"),
        ("negative.view", "查看不满意评价详情", "View negative rating details"),
        ("followup.handle", "处理待跟进", "Handle follow-up items"),
        ("data.cleanup", "数据清理", "Clean up data"),
        ("data.backup", "数据备份", "Back up data"),
    ],
    "customers" => [
        ("customer.view", "查看客户", "View customers"),
        ("customer.edit", "新增与修改客户", "Create and edit customers"),
        ("customer.delete", "删除客户", "Delete customers"),
        ("customer.import", "导入客户", "Import customers"),
        ("customer.export", "导出客户", "Export customers"),
        ("customer.assign", "分配客户", "Assign customers"),
        ("customer.pool", "领取公海客户", "Claim customers from the public pool"),
        ("telephony.notify", "来电弹屏接口", "Caller-ID integration (telephony system)"),
        ("phone.view", "查看完整电话号码", "View full phone numbers"),
        ("record.audit", "审核", "Audit records"),
        ("points.manage", "积分管理", "Manage points"),
    ],
    "grading" => [
        ("grading.view", "查看客户分级", "View customer grades"),
        ("grading.manage", "管理评分模型与评分", "Manage scoring models and runs"),
    ],
}

pub fn permission(code: &str) -> Option<&'static Permission> {
    PERMISSIONS.iter().find(|p| p.code == code)
}

/// How far a role reaches (数据范围). Ordered from narrowest to widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataLevel {
    /// 本人: records one owns.
    #[serde(rename = "self")]
    Own,
    /// 本人及下属: records of oneself and of the people one manages, directly or not.
    SelfAndSubordinates,
    /// 本部门: the org node the role is held at.
    Org,
    /// 本部门及下属部门: that node and its whole subtree.
    OrgAndChildren,
    /// 全部: everything.
    All,
}

impl DataLevel {
    pub const ALL: [DataLevel; 5] = [
        Self::Own,
        Self::SelfAndSubordinates,
        Self::Org,
        Self::OrgAndChildren,
        Self::All,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Own => "self",
            Self::SelfAndSubordinates => "self_and_subordinates",
            Self::Org => "org",
            Self::OrgAndChildren => "org_and_children",
            Self::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == s)
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Self::Own => "本人",
            Self::SelfAndSubordinates => "本人及下属",
            Self::Org => "本部门",
            Self::OrgAndChildren => "本部门及下属部门",
            Self::All => "全部",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Self::Own => "Self",
            Self::SelfAndSubordinates => "Self and subordinates",
            Self::Org => "Own org",
            Self::OrgAndChildren => "Own org and children",
            Self::All => "All",
        }
    }
}

/// Argon2id with the crate's recommended parameters. Call it off the async threads: it is slow on purpose.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with default parameters cannot fail")
        .to_string()
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh secret for a session, an API token or a terminal: 32 random bytes, hex, with a prefix
/// that says what it is (so a leaked one is recognisable in logs and scanners).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// What is stored for a secret: its SHA-256. Secrets are random, so no salt or slow hash is needed.
pub fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A readable random password for a generated administrator account.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Login throttling: after this many consecutive failures each attempt waits; past the lock
/// threshold the account is locked for a while.
pub const SLOW_AFTER_FAILURES: i64 = 3;
pub const LOCK_AFTER_FAILURES: i64 = 10;
pub const LOCK_MINUTES: i64 = 15;

/// The pause before answering the n-th consecutive failed login (0 under the threshold).
pub fn login_delay_ms(consecutive_failures: i64) -> u64 {
    if consecutive_failures < SLOW_AFTER_FAILURES {
        0
    } else {
        (100 * (consecutive_failures - SLOW_AFTER_FAILURES + 1)).min(1_000) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_codes_are_unique() {
        let mut codes: Vec<_> = PERMISSIONS.iter().map(|p| p.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), PERMISSIONS.len());
        assert!(permission("org.manage").is_some());
        assert!(permission("nope").is_none());
    }

    #[test]
    fn passwords_and_secrets() {
        let h = hash_password("s3cret-pass");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "s3cret-pass"));
        assert!(!verify_password(&h, "s3cret-pasS"));
        assert!(!verify_password("garbage", "x"));
        let s = new_secret("kpt");
        assert!(s.starts_with("kpt_") && s.len() == 68);
        assert_ne!(secret_digest(&s), secret_digest(&new_secret("kpt")));
        assert_eq!(generate_password().len(), 16);
    }

    #[test]
    fn data_levels_round_trip_and_order() {
        for l in DataLevel::ALL {
            assert_eq!(DataLevel::parse(l.code()), Some(l));
            assert_eq!(
                serde_json::to_string(&l).unwrap(),
                format!("\"{}\"", l.code())
            );
        }
        assert!(DataLevel::Own < DataLevel::All);
        assert_eq!(login_delay_ms(0), 0);
        assert!(login_delay_ms(5) > 0 && login_delay_ms(100) == 1_000);
    }
}
