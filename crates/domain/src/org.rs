//! The org tree as materialised paths: `/1/` is a root, `/1/7/` a child of 1, `/1/7/42/` a grandchild.
//! A subtree is one range of paths, so "everything under branch X" is one indexed condition.

use crate::validate::{self, Invalid};
use serde::{Deserialize, Serialize};

pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";

/// What a node is; only a hint for the UI and for later modules (outlets hold windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    HeadOffice,
    Branch,
    Outlet,
    Department,
}

impl OrgKind {
    pub const ALL: [OrgKind; 4] = [
        Self::HeadOffice,
        Self::Branch,
        Self::Outlet,
        Self::Department,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::HeadOffice => "head_office",
            Self::Branch => "branch",
            Self::Outlet => "outlet",
            Self::Department => "department",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == s)
    }

    /// The kind a new node gets when none is given: by depth below the root.
    pub fn default_for_depth(depth: usize) -> Self {
        match depth {
            0 => Self::HeadOffice,
            1 => Self::Branch,
            _ => Self::Outlet,
        }
    }
}

/// A node's materialised path. Always starts and ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrgPath(String);

impl OrgPath {
    pub fn root(id: i64) -> Self {
        Self(format!("/{id}/"))
    }

    pub fn child(&self, id: i64) -> Self {
        Self(format!("{}{id}/", self.0))
    }

    /// Parses a stored path, refusing anything that is not `/id/id/…/`.
    pub fn parse(s: &str) -> Option<Self> {
        let inner = s.strip_prefix('/')?.strip_suffix('/')?;
        if inner.is_empty()
            || !inner
                .split('/')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        Some(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Ids from the root down to this node.
    pub fn ids(&self) -> Vec<i64> {
        self.0
            .split('/')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    pub fn id(&self) -> i64 {
        *self.ids().last().expect("a path names at least one node")
    }

    /// 0 for a root.
    pub fn depth(&self) -> usize {
        self.ids().len() - 1
    }

    pub fn parent(&self) -> Option<Self> {
        let ids = self.ids();
        if ids.len() < 2 {
            return None;
        }
        Some(Self(format!(
            "/{}/",
            ids[..ids.len() - 1]
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join("/")
        )))
    }

    /// True for this node and every node below it.
    pub fn contains(&self, other: &OrgPath) -> bool {
        other.0.starts_with(&self.0)
    }

    /// The half-open range `[lo, hi)` holding exactly this subtree's paths in byte order:
    /// every descendant starts with `lo`, and `hi` is `lo` with its last `/` raised to `0`.
    pub fn subtree_range(&self) -> (String, String) {
        let mut hi = self.0.clone();
        hi.pop();
        hi.push('0');
        (self.0.clone(), hi)
    }

    /// Where `node` (and so each of its descendants) lands when `node` moves under `new_parent`.
    /// Refuses a move under the node itself or one of its descendants: that would make a cycle.
    pub fn rebase(&self, node: &OrgPath, new_parent: &OrgPath) -> Result<OrgPath, MoveError> {
        if node.contains(new_parent) {
            return Err(MoveError::IntoOwnSubtree);
        }
        if !node.contains(self) {
            return Err(MoveError::NotInSubtree);
        }
        Ok(OrgPath(format!(
            "{}{}",
            new_parent.0,
            &self.0[node.parent_len()..]
        )))
    }

    fn parent_len(&self) -> usize {
        self.parent().map_or(1, |p| p.0.len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    #[error("an org cannot move under itself or one of its own descendants")]
    IntoOwnSubtree,
    #[error("the path is not inside the subtree that moves")]
    NotInSubtree,
}

/// A time zone name from the IANA database, e.g. `Asia/Shanghai`.
pub fn timezone(field: &str, value: &str) -> Result<String, Invalid> {
    let v = value.trim();
    v.parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_string())
        .map_err(|_| {
            Invalid::new(
                field,
                "invalid_timezone",
                format!("'{v}' is not a known time zone (e.g. Asia/Shanghai)"),
            )
        })
}

/// The local day (midnight to midnight in `timezone`) that the moment `at` falls in, as UTC millis.
pub fn local_day(timezone: &str, at: crate::Millis) -> (crate::Millis, crate::Millis) {
    use chrono::{Duration, TimeZone};
    let tz: chrono_tz::Tz = timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    let local = tz
        .timestamp_millis_opt(at)
        .single()
        .unwrap_or_else(|| tz.timestamp_millis_opt(0).unwrap())
        .date_naive();
    let start = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
            .earliest()
            .map_or(at, |t| t.timestamp_millis())
    };
    (start(local), start(local + Duration::days(1)))
}

/// `YYYY-MM-DD HH:MM:SS` in `timezone`.
pub fn local_time(timezone: &str, at: crate::Millis) -> String {
    use chrono::TimeZone;
    let tz: chrono_tz::Tz = timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    tz.timestamp_millis_opt(at)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub fn name(value: &str) -> Result<String, Invalid> {
    validate::required_text("name", value, 100)
}

pub fn code(value: &str) -> Result<String, Invalid> {
    validate::code("code", value, 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn paths_and_ranges() {
        let root = OrgPath::root(1);
        let branch = root.child(7);
        let outlet = branch.child(42);
        assert_eq!(outlet.as_str(), "/1/7/42/");
        assert_eq!(outlet.ids(), vec![1, 7, 42]);
        assert_eq!(outlet.depth(), 2);
        assert_eq!(outlet.parent(), Some(branch.clone()));
        assert_eq!(root.parent(), None);
        assert!(branch.contains(&outlet));
        assert!(!outlet.contains(&branch));
        // 7 and 70 share a prefix as text, not as paths
        assert!(!branch.contains(&root.child(70)));
        let (lo, hi) = branch.subtree_range();
        assert_eq!((lo.as_str(), hi.as_str()), ("/1/7/", "/1/70"));
        assert!(OrgPath::parse("/1/x/").is_none());
        assert!(OrgPath::parse("1/2/").is_none());
        assert!(OrgPath::parse("//").is_none());
    }

    #[test]
    fn local_days() {
        // 2026-11-22 00:30 in Shanghai is 2026-11-21 16:30 UTC
        let at = 1_795_278_600_000; // 2026-11-21T16:30:00Z
        let (start, end) = local_day("Asia/Shanghai", at);
        assert_eq!(start, 1_795_276_800_000); // 2026-11-21T16:00:00Z
        assert_eq!(end - start, 86_400_000);
        assert_eq!(local_time("Asia/Shanghai", at), "2026-11-22 00:30:00");
        assert_eq!(local_time("UTC", at), "2026-11-21 16:30:00");
    }

    #[test]
    fn moves_rebase_the_subtree_and_refuse_cycles() {
        let a = OrgPath::root(1).child(2);
        let b = OrgPath::root(1).child(3);
        let deep = a.child(4).child(5);
        assert_eq!(deep.rebase(&a, &b).unwrap().as_str(), "/1/3/2/4/5/");
        assert_eq!(a.rebase(&a, &deep), Err(MoveError::IntoOwnSubtree));
        assert_eq!(a.rebase(&a, &a), Err(MoveError::IntoOwnSubtree));
        assert!(timezone("timezone", "Asia/Shanghai").is_ok());
        assert!(timezone("timezone", "Mars/Base").is_err());
    }

    /// A random tree as (id → parent) plus the paths derived from it.
    fn tree_strategy() -> impl Strategy<Value = Vec<usize>> {
        // node i (i ≥ 1) gets a parent among 0..i; node 0 is the root
        (2usize..40).prop_flat_map(|n| (1..n).map(|i| 0..i).collect::<Vec<_>>())
    }

    fn paths_of(parents: &BTreeMap<i64, Option<i64>>) -> BTreeMap<i64, OrgPath> {
        fn path(id: i64, parents: &BTreeMap<i64, Option<i64>>, guard: usize) -> OrgPath {
            assert!(guard < 1000, "cycle in the tree");
            match parents[&id] {
                None => OrgPath::root(id),
                Some(p) => path(p, parents, guard + 1).child(id),
            }
        }
        parents
            .keys()
            .map(|&id| (id, path(id, parents, 0)))
            .collect()
    }

    proptest! {
        /// The path range of a node holds exactly the node and its descendants,
        /// and byte-range comparison agrees with prefix containment (as SQL will use it).
        #[test]
        fn subtree_range_is_exactly_the_descendants(parent_idx in tree_strategy()) {
            // ids from 1; make ids of mixed widths (1, 10, 100…) to catch prefix mistakes
            let id = |i: usize| (i as i64 + 1) * if i.is_multiple_of(3) { 10 } else { 1 } + i as i64 * 7;
            let mut parents = BTreeMap::new();
            parents.insert(id(0), None);
            for (i, p) in parent_idx.iter().enumerate() {
                parents.insert(id(i + 1), Some(id(*p)));
            }
            let paths = paths_of(&parents);
            for (&node, node_path) in &paths {
                let (lo, hi) = node_path.subtree_range();
                for (&other, other_path) in &paths {
                    let mut cur = Some(other);
                    let mut is_desc = false;
                    while let Some(c) = cur {
                        if c == node { is_desc = true; break; }
                        cur = parents[&c];
                    }
                    let in_range = other_path.as_str() >= lo.as_str() && other_path.as_str() < hi.as_str();
                    prop_assert_eq!(in_range, is_desc, "node {} other {}", node, other);
                    prop_assert_eq!(node_path.contains(other_path), is_desc);
                }
            }
        }

        /// Any sequence of moves, each either refused or applied by rebasing the subtree's paths,
        /// leaves a tree: every path's parent chain matches the parent map and no cycle appears.
        #[test]
        fn moves_never_create_cycles(parent_idx in tree_strategy(), moves in proptest::collection::vec((0usize..40, 0usize..40), 1..30)) {
            let n = parent_idx.len() + 1;
            let mut parents: BTreeMap<i64, Option<i64>> = BTreeMap::new();
            parents.insert(1, None);
            for (i, p) in parent_idx.iter().enumerate() {
                parents.insert(i as i64 + 2, Some(*p as i64 + 1));
            }
            let mut paths = paths_of(&parents);
            for (a, b) in moves {
                let (node, target) = ((a % n) as i64 + 1, (b % n) as i64 + 1);
                if parents[&node].is_none() { continue; } // the root stays the root
                let node_path = paths[&node].clone();
                let target_path = paths[&target].clone();
                let would_cycle = node_path.contains(&target_path);
                match node_path.rebase(&node_path, &target_path) {
                    Err(MoveError::IntoOwnSubtree) => prop_assert!(would_cycle),
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                    Ok(_) => {
                        prop_assert!(!would_cycle);
                        let moved: Vec<i64> = paths.iter().filter(|(_, p)| node_path.contains(p)).map(|(id, _)| *id).collect();
                        for id in moved {
                            let new = paths[&id].rebase(&node_path, &target_path).unwrap();
                            paths.insert(id, new);
                        }
                        parents.insert(node, Some(target));
                    }
                }
                // the stored paths are exactly what the parent map derives (which panics on a cycle)
                prop_assert_eq!(&paths, &paths_of(&parents));
            }
        }
    }
}
