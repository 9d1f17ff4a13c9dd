//! The caller's scope: which org nodes and whose records a request may read or change.
//! Computed once per request from the caller's roles; `store` turns it into SQL.

use crate::auth::DataLevel;
use crate::org::OrgPath;
use std::collections::BTreeSet;

/// A role held at an org node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub org_path: OrgPath,
    pub level: DataLevel,
    pub permissions: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub user_id: i64,
    /// Kept for the audit log, which names people as they were called at the time.
    pub username: String,
    /// The caller's own org.
    pub org_path: OrgPath,
    /// People the caller manages, directly or not (for 本人及下属).
    pub subordinate_ids: Vec<i64>,
    pub grants: Vec<Grant>,
}

/// Where a permission reaches among org-held objects (org nodes, windows, staff, audit entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Nothing,
    Everything,
    /// Whole subtrees, and single nodes without their children.
    Some {
        subtrees: Vec<OrgPath>,
        nodes: Vec<OrgPath>,
    },
}

/// Where a permission reaches among owned records (customers, follow-ups…): by org, or by owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordReach {
    pub orgs: Reach,
    /// Records whose owner is one of these count too.
    pub owners: Vec<i64>,
}

impl Scope {
    pub fn has(&self, permission: &str) -> bool {
        self.grants
            .iter()
            .any(|g| g.permissions.contains(permission))
    }

    pub fn permissions(&self) -> BTreeSet<String> {
        self.grants
            .iter()
            .flat_map(|g| g.permissions.iter().cloned())
            .collect()
    }

    /// The widest data level held with this permission.
    pub fn widest_level(&self, permission: &str) -> Option<DataLevel> {
        self.with(permission).map(|g| g.level).max()
    }

    fn with<'a>(&'a self, permission: &'a str) -> impl Iterator<Item = &'a Grant> + 'a {
        self.grants
            .iter()
            .filter(move |g| g.permissions.contains(permission))
    }

    /// Org-held objects: `all` reaches everything, `org_and_children` the grant's subtree, and the
    /// narrower levels the grant's own node (they narrow owned records, not the org's furniture).
    pub fn reach(&self, permission: &str) -> Reach {
        self.reach_any(&[permission])
    }

    /// The union of the reaches of several permissions (e.g. windows are seen by those who manage
    /// them and by those who watch them).
    pub fn reach_any(&self, permissions: &[&str]) -> Reach {
        let mut subtrees = Vec::new();
        let mut nodes = Vec::new();
        for g in self
            .grants
            .iter()
            .filter(|g| permissions.iter().any(|p| g.permissions.contains(*p)))
        {
            match g.level {
                DataLevel::All => return Reach::Everything,
                DataLevel::OrgAndChildren => subtrees.push(g.org_path.clone()),
                DataLevel::Org | DataLevel::SelfAndSubordinates | DataLevel::Own => {
                    nodes.push(g.org_path.clone())
                }
            }
        }
        Reach::normalised(subtrees, nodes)
    }

    /// Owned records: by org for the org levels, by owner for 本人 and 本人及下属.
    pub fn record_reach(&self, permission: &str) -> RecordReach {
        let mut subtrees = Vec::new();
        let mut nodes = Vec::new();
        let mut owners = BTreeSet::new();
        for g in self.with(permission) {
            match g.level {
                DataLevel::All => {
                    return RecordReach {
                        orgs: Reach::Everything,
                        owners: vec![],
                    }
                }
                DataLevel::OrgAndChildren => subtrees.push(g.org_path.clone()),
                DataLevel::Org => nodes.push(g.org_path.clone()),
                DataLevel::SelfAndSubordinates => {
                    owners.insert(self.user_id);
                    owners.extend(self.subordinate_ids.iter().copied());
                }
                DataLevel::Own => {
                    owners.insert(self.user_id);
                }
            }
        }
        RecordReach {
            orgs: Reach::normalised(subtrees, nodes),
            owners: owners.into_iter().collect(),
        }
    }

    /// Whether an org node lies within the reach of a permission.
    pub fn reaches(&self, permission: &str, path: &OrgPath) -> bool {
        self.reach(permission).contains(path)
    }
}

impl Reach {
    /// Drops subtrees and nodes already covered by a wider subtree, so the SQL stays short.
    fn normalised(mut subtrees: Vec<OrgPath>, nodes: Vec<OrgPath>) -> Reach {
        subtrees.sort();
        subtrees.dedup();
        let kept: Vec<OrgPath> = subtrees
            .iter()
            .filter(|s| !subtrees.iter().any(|o| o != *s && o.contains(s)))
            .cloned()
            .collect();
        let mut nodes: Vec<OrgPath> = nodes
            .into_iter()
            .filter(|n| !kept.iter().any(|s| s.contains(n)))
            .collect();
        nodes.sort();
        nodes.dedup();
        if kept.is_empty() && nodes.is_empty() {
            Reach::Nothing
        } else {
            Reach::Some {
                subtrees: kept,
                nodes,
            }
        }
    }

    pub fn contains(&self, path: &OrgPath) -> bool {
        match self {
            Reach::Nothing => false,
            Reach::Everything => true,
            Reach::Some { subtrees, nodes } => {
                subtrees.iter().any(|s| s.contains(path)) || nodes.contains(path)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(path: &OrgPath, level: DataLevel, perms: &[&str]) -> Grant {
        Grant {
            org_path: path.clone(),
            level,
            permissions: perms.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn reach_follows_levels() {
        let root = OrgPath::root(1);
        let a = root.child(2);
        let b = root.child(3);
        let a1 = a.child(4);
        let scope = Scope {
            user_id: 10,
            username: "zhang".into(),
            org_path: a.clone(),
            subordinate_ids: vec![11, 12],
            grants: vec![
                grant(
                    &a,
                    DataLevel::OrgAndChildren,
                    &["org.view", "customer.view"],
                ),
                grant(&a1, DataLevel::Org, &["org.view"]),
                grant(&b, DataLevel::SelfAndSubordinates, &["customer.view"]),
            ],
        };
        assert!(scope.has("org.view") && !scope.has("org.manage"));
        // a1 lies inside a's subtree, so the node grant folds away
        assert_eq!(
            scope.reach("org.view"),
            Reach::Some {
                subtrees: vec![a.clone()],
                nodes: vec![]
            }
        );
        assert!(scope.reaches("org.view", &a1));
        assert!(!scope.reaches("org.view", &b));
        assert!(!scope.reaches("org.view", &root));
        let rr = scope.record_reach("customer.view");
        assert_eq!(rr.owners, vec![10, 11, 12]);
        assert_eq!(
            rr.orgs,
            Reach::Some {
                subtrees: vec![a.clone()],
                nodes: vec![]
            }
        );
        assert_eq!(scope.reach("role.manage"), Reach::Nothing);
        assert_eq!(
            scope.widest_level("customer.view"),
            Some(DataLevel::OrgAndChildren)
        );

        let admin = Scope {
            grants: vec![grant(&root, DataLevel::All, &["org.view"])],
            ..scope
        };
        assert_eq!(admin.reach("org.view"), Reach::Everything);
        assert!(admin.reaches("org.view", &b));
    }
}
