//! Grading settings (分级规则): the lifecycle rules and star thresholds an org classifies its
//! customers with, inherited down the tree like every org setting. A run classifies its whole
//! subtree with the settings in force at the org it runs for; a star override may go up to the
//! number of stars in force at the customer's org.

use crate::audit::{self, Changes, Entry};
use crate::evaluation::org_in;
use crate::{require, settings, Db, Result};
use keping_domain::grading::GradingSettings;
use keping_domain::org::OrgPath;
use keping_domain::scope::Scope;
use serde::Serialize;
use utoipa::ToSchema;

const GRADING_SETTINGS: &str = "grading";

/// The settings in force at an org and where they come from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GradingSettingsInForce {
    pub org_id: i64,
    #[schema(value_type = Object)]
    pub settings: GradingSettings,
    /// Whether the org has settings of its own (else it inherits).
    pub own: bool,
    /// The org whose settings are in force; null: the built-in defaults (SPEC §4.4 and 100 / 300 /
    /// 1,000 points for one to three stars).
    pub from_org_id: Option<i64>,
    pub from_org_name: Option<String>,
}

/// The settings in force at `path` (its own, an ancestor's or the defaults).
pub async fn in_force(conn: &mut sqlx::AnyConnection, path: &OrgPath) -> Result<GradingSettings> {
    Ok(settings::nearest_named(conn, path, GRADING_SETTINGS)
        .await?
        .map(|(_, _, s)| s)
        .unwrap_or_default())
}

pub async fn get(db: &Db, scope: &Scope, org_id: i64) -> Result<GradingSettingsInForce> {
    let permission = if scope.has("grading.manage") {
        "grading.manage"
    } else {
        require(scope, "grading.view")?;
        "grading.view"
    };
    let mut tx = db.read().await?;
    let path = org_in(&mut tx, scope, permission, org_id).await?;
    let nearest = settings::nearest_named(&mut tx, &path, GRADING_SETTINGS).await?;
    tx.commit().await?;
    Ok(match nearest {
        Some((from, name, settings)) => GradingSettingsInForce {
            org_id,
            settings,
            own: from == org_id,
            from_org_id: Some(from),
            from_org_name: Some(name),
        },
        None => GradingSettingsInForce {
            org_id,
            settings: GradingSettings::default(),
            own: false,
            from_org_id: None,
            from_org_name: None,
        },
    })
}

/// Sets an org's own settings (`Some`) or drops them so that it inherits again (`None`).
pub async fn put(
    db: &Db,
    scope: &Scope,
    org_id: i64,
    new: Option<&GradingSettings>,
) -> Result<GradingSettingsInForce> {
    require(scope, "grading.manage")?;
    if let Some(s) = new {
        s.validate()?;
    }
    let mut tx = db.begin().await?;
    let path = org_in(&mut tx, scope, "grading.manage", org_id).await?;
    let before = in_force(&mut tx, &path).await?;
    let changed = match new {
        Some(s) => {
            settings::put(&mut tx, org_id, GRADING_SETTINGS, s).await?;
            true
        }
        None => settings::remove(&mut tx, org_id, GRADING_SETTINGS).await?,
    };
    if changed {
        let after = in_force(&mut tx, &path).await?;
        let mut changes = Changes::new();
        changes.field("grading_settings", &before, &after);
        audit::record(
            &mut *tx,
            scope.into(),
            Entry {
                org_path: path.as_str(),
                action: if new.is_some() { "update" } else { "inherit" },
                entity: "grading_settings",
                entity_id: Some(org_id),
                summary: String::new(),
                changes: Some(changes),
            },
        )
        .await?;
    }
    tx.commit().await?;
    get(db, scope, org_id).await
}
