//! The objects the fake serves, versioned like etcd: every change makes a new revision and
//! keeps the previous snapshots, so a continue token reads the revision its first page was read
//! at (a consistent list), until the revisions are compacted away.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{FakeCluster, FakeNode, FakePod};

/// A pod as stored: the test's description plus what the server assigns.
#[derive(Debug, Clone)]
pub(crate) struct StoredPod {
    pub pod: FakePod,
    pub uid: String,
    pub resource_version: i64,
    /// When the Ready condition last changed (RFC 3339).
    pub ready_since: String,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredNode {
    pub node: FakeNode,
    pub uid: String,
    pub resource_version: i64,
}

/// One revision of the whole store. Pods are keyed `namespace/name` and nodes `name`, the
/// etcd keys without their `/registry/pods/` and `/registry/minions/` prefixes, so map order is
/// etcd order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Objects {
    pub pods: BTreeMap<String, StoredPod>,
    pub nodes: BTreeMap<String, StoredNode>,
}

#[derive(Debug)]
pub(crate) struct Store {
    pub revision: i64,
    /// Reads at revisions below this fail as compacted.
    pub compacted_below: i64,
    history: Vec<(i64, Arc<Objects>)>,
}

/// The first revision the fake hands out; any positive start would do.
const FIRST_REVISION: i64 = 1000;

pub(crate) fn pod_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Store {
    pub fn new(cluster: &FakeCluster) -> Store {
        let mut revision = FIRST_REVISION;
        let mut objects = Objects::default();
        for node in &cluster.nodes {
            revision += 1;
            let stored =
                StoredNode { node: node.clone(), uid: uid(&format!("node/{}", node.name)), resource_version: revision };
            objects.nodes.insert(node.name.clone(), stored);
        }
        for pod in &cluster.pods {
            revision += 1;
            let key = pod_key(&pod.namespace, &pod.name);
            let stored = StoredPod {
                pod: pod.clone(),
                uid: uid(&format!("pod/{key}")),
                resource_version: revision,
                ready_since: pod.created_at.clone(),
            };
            objects.pods.insert(key, stored);
        }
        Store { revision, compacted_below: 0, history: vec![(revision, Arc::new(objects))] }
    }

    pub fn current(&self) -> Arc<Objects> {
        self.history.last().map(|(_, o)| o.clone()).unwrap_or_default()
    }

    /// The objects as of `revision`, or None when that revision has been compacted.
    pub fn at(&self, revision: i64) -> Option<Arc<Objects>> {
        if revision < self.compacted_below {
            return None;
        }
        self.history.iter().rev().find(|(r, _)| *r <= revision).map(|(_, o)| o.clone())
    }

    /// Applies `change` as a new revision; `change` gets the new revision number.
    pub fn update(&mut self, change: impl FnOnce(&mut Objects, i64) -> bool) -> bool {
        let mut next = (*self.current()).clone();
        if !change(&mut next, self.revision + 1) {
            return false;
        }
        self.revision += 1;
        self.history.push((self.revision, Arc::new(next)));
        true
    }

    /// etcd compaction at the current revision: everything read so far is gone.
    pub fn compact(&mut self) {
        let current = self.current();
        self.revision += 1;
        self.history = vec![(self.revision, current)];
        self.compacted_below = self.revision;
    }
}

/// A stable, UUID-shaped id derived from `seed`.
pub(crate) fn uid(seed: &str) -> String {
    let hex = hex_id(seed, 32);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// `len` hex digits derived from `seed` (FNV-1a, re-seeded per 16 digits).
pub(crate) fn hex_id(seed: &str, len: usize) -> String {
    let mut out = String::new();
    let mut round = 0u64;
    while out.len() < len {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ round;
        for byte in seed.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        out.push_str(&format!("{hash:016x}"));
        round += 1;
    }
    out.truncate(len);
    out
}

/// Now as RFC 3339 in UTC, whole seconds, as Kubernetes writes timestamps.
pub(crate) fn now_rfc3339() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
