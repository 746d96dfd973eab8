//! The names of everything the operator creates for a cluster, in one place.

use crate::replset::member_host;

/// Names derived from a MongoCluster's name. The API limits that name to 40 characters, so
/// every derived name fits Kubernetes' 63-character limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNames {
    pub cluster: String,
    pub namespace: String,
}

impl ClusterNames {
    pub fn new(cluster: &str, namespace: &str) -> ClusterNames {
        ClusterNames { cluster: cluster.to_string(), namespace: namespace.to_string() }
    }

    /// The StatefulSet; its Pods are `<cluster>-<ordinal>`.
    pub fn statefulset(&self) -> String {
        self.cluster.clone()
    }

    /// The headless Service that gives each member a stable DNS name.
    pub fn headless_service(&self) -> String {
        format!("{}-members", self.cluster)
    }

    /// The Service clients connect through.
    pub fn client_service(&self) -> String {
        self.cluster.clone()
    }

    /// The ConfigMap holding mongod.conf.
    pub fn config_map(&self) -> String {
        format!("{}-mongod-config", self.cluster)
    }

    /// The Secret with the keyFile and the operator's own credentials.
    pub fn internal_secret(&self) -> String {
        format!("{}-internal", self.cluster)
    }

    /// The Secret with the cluster's own certificate authority (`ca.crt`, `ca.key`), when the
    /// operator issues the certificates.
    pub fn ca_secret(&self) -> String {
        format!("{}-ca", self.cluster)
    }

    /// The Secret the members mount at their TLS directory: `tls.crt`, `tls.key`, `ca.crt`,
    /// and `tls.pem` (key and certificate in one file, as mongod's certificateKeyFile wants).
    pub fn tls_secret(&self) -> String {
        format!("{}-tls", self.cluster)
    }

    /// The cert-manager `Certificate` for the members, with `spec.tls.issuerRef`.
    pub fn certificate(&self) -> String {
        format!("{}-members", self.cluster)
    }

    /// The Secret cert-manager writes for that `Certificate`; the operator copies it into
    /// [`Self::tls_secret`] with the combined file mongod reads.
    pub fn issued_secret(&self) -> String {
        format!("{}-tls-issued", self.cluster)
    }

    /// The Prometheus Operator `PodMonitor` of the members.
    pub fn pod_monitor(&self) -> String {
        format!("{}-mongodb", self.cluster)
    }

    pub fn pod_disruption_budget(&self) -> String {
        self.cluster.clone()
    }

    pub fn pod(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.cluster)
    }

    /// The arbiter's StatefulSet (`spec.arbiter`); its one Pod is `<cluster>-arbiter-0`.
    pub fn arbiter_statefulset(&self) -> String {
        format!("{}-arbiter", self.cluster)
    }

    pub fn arbiter_pod(&self) -> String {
        format!("{}-0", self.arbiter_statefulset())
    }

    /// The arbiter's host in the replica-set config, under the members' headless Service.
    pub fn arbiter_host(&self, cluster_domain: &str) -> String {
        member_host(&self.arbiter_pod(), &self.headless_service(), &self.namespace, cluster_domain)
    }

    /// The Service of one member, for clients outside Kubernetes (`expose.perMember`).
    pub fn member_service(&self, ordinal: i32) -> String {
        bounded(&self.pod(ordinal), "external")
    }

    /// The replica-set name: the cluster's name.
    pub fn replica_set(&self) -> String {
        self.cluster.clone()
    }

    /// A member's host in the replica-set config.
    pub fn member_host(&self, ordinal: i32, cluster_domain: &str) -> String {
        member_host(&self.pod(ordinal), &self.headless_service(), &self.namespace, cluster_domain)
    }

    /// Every member's host for `members` members (at least one), in ordinal order: the host
    /// list of a connection string.
    pub fn member_hosts(&self, members: i32, cluster_domain: &str) -> Vec<String> {
        (0..members.max(1)).map(|i| self.member_host(i, cluster_domain)).collect()
    }

    /// Default name of a user's connection Secret: `<cluster>-<db>-<user>`, lowercased, with
    /// characters a Secret name cannot hold replaced by '-'.
    pub fn user_secret(&self, db: &str, user: &str) -> String {
        let raw = format!("{}-{db}-{user}", self.cluster).to_lowercase();
        let cleaned: String =
            raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect();
        cleaned.trim_matches(|c| c == '-' || c == '.').chars().take(253).collect()
    }
}

/// `<name>-<suffix>` within 63 characters (a label value, a DNS label). A longer `name` is cut
/// and followed by a hash of it, so two long names stay apart.
pub fn bounded(name: &str, suffix: &str) -> String {
    let full = format!("{name}-{suffix}");
    if full.len() <= 63 {
        return full;
    }
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    let keep = 63 - suffix.len() - 1 - 9;
    let cut: String = name.chars().take(keep).collect();
    format!("{}-{}-{suffix}", cut.trim_end_matches('-'), &hash[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_derived_from_the_cluster() {
        let n = ClusterNames::new("orders", "prod");
        assert_eq!(n.headless_service(), "orders-members");
        assert_eq!(n.member_host(2, "cluster.local"), "orders-2.orders-members.prod.svc.cluster.local:27017");
        assert_eq!(n.user_secret("admin", "Orders_App"), "orders-admin-orders-app");
        let longest = ClusterNames::new(&"a".repeat(40), "ns");
        assert!(longest.config_map().len() <= 63 && longest.headless_service().len() <= 63);
    }
}
