//! Admission against a real API server: the CRDs install and become Established, every
//! example is accepted, and invalid manifests are refused with a message a user understands.

mod support;

use serde_json::json;
use support::*;

/// A manifest the API server must refuse on create, and a piece of the message it must give.
struct Invalid {
    what: &'static str,
    yaml: String,
    message: &'static str,
}

/// A valid object, a change to it the API server must refuse, and a piece of the message.
struct InvalidChange {
    what: &'static str,
    yaml: String,
    patch: serde_json::Value,
    message: &'static str,
}

fn cluster(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\nmetadata:\n  name: {name}\nspec:\n{}",
        indent(spec)
    )
}

fn backup(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoBackup\nmetadata:\n  name: {name}\nspec:\n{}",
        indent(spec)
    )
}

fn attachment(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: NetworkPolicyAttachment\nmetadata:\n  name: {name}\nspec:\n{}",
        indent(spec)
    )
}

/// None when the API server refused with 422 and a message containing `message`; otherwise
/// what happened instead.
fn unexpected<T>(what: &str, message: &str, result: Result<T, kube::Error>) -> Option<String> {
    match result {
        Ok(_) => Some(format!("{what}: accepted")),
        Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(message) => None,
        Err(e) => Some(format!("{what}: expected 422 with {message:?}, got {e}")),
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

const S3: &str = "  - name: primary\n    s3: {bucket: backups, credentialsSecretRef: {name: creds}}\n";

fn invalid_creates() -> Vec<Invalid> {
    let c = |what, spec: &str, message| Invalid { what, yaml: cluster("db", spec), message };
    let b = |what, spec: &str, message| Invalid { what, yaml: backup("bk", spec), message };
    let a = |what, spec: &str, message| Invalid { what, yaml: attachment("att", spec), message };
    vec![
        // MongoCluster
        c("cluster without version", "members: 3", "spec.version: Required value"),
        c("version that is not x.y.z", "version: latest", "spec.version in body should match"),
        c("end-of-life version", "version: 5.0.9", "version must be 6.0.0 or later"),
        c("zero members", "version: 8.0.4\nmembers: 0", "spec.members in body should be greater than or equal to 1"),
        c("too many members", "version: 8.0.4\nmembers: 51", "spec.members in body should be less than or equal to 50"),
        c(
            "storage size that is not a quantity",
            "version: 8.0.4\nstorage: {size: ten-gigs}",
            "storage.size must be a positive quantity",
        ),
        c("zero storage size", "version: 8.0.4\nstorage: {size: '0'}", "storage.size must be a positive quantity"),
        c(
            "mongod config sets the replica set name",
            "version: 8.0.4\nmongod: {config: {replication: {replSetName: other}}}",
            "mongod.config must not set replication.replSetName",
        ),
        c(
            "mongod config turns authorization off",
            "version: 8.0.4\nmongod: {config: {security: {authorization: disabled}}}",
            "authentication is always on",
        ),
        c(
            "mongod config moves dbPath",
            "version: 8.0.4\nmongod: {config: {storage: {dbPath: /tmp}}}",
            "mongod.config must not set storage.dbPath",
        ),
        c(
            "mongod config lets clients in without credentials",
            "version: 8.0.4\nmongod: {config: {security: {transitionToAuth: true}}}",
            "mongod.config must not set security.transitionToAuth",
        ),
        c(
            "mongod config turns the localhost exception on",
            "version: 8.0.4\nmongod: {config: {setParameter: {enableLocalhostAuthBypass: true}}}",
            "mongod.config must not set setParameter.enableLocalhostAuthBypass",
        ),
        c(
            "mongod config sets TLS the operator does not manage",
            "version: 8.0.4\nmongod: {config: {net: {tls: {mode: requireTLS}}}}",
            "mongod.config must not set net.tls",
        ),
        c(
            "two sources for the members' certificate",
            "version: 8.0.4\ntls: {issuerRef: {name: ca}, certificateSecretRef: {name: mine}}",
            "tls.issuerRef and tls.certificateSecretRef are two sources of one certificate",
        ),
        c(
            "a cert-manager certificate living under an hour",
            "version: 8.0.4\ntls: {issuerRef: {name: ca}, certificateLifetime: 40m}",
            "cert-manager refuses lives under an hour",
        ),
        c(
            "an issuer without TLS",
            "version: 8.0.4\ntls: {mode: Disabled, issuerRef: {name: ca}}",
            "tls.issuerRef is only used when tls.mode is not Disabled",
        ),
        c(
            "cpu limit that is not a quantity",
            "version: 8.0.4\nresources: {limits: {cpu: lots}}",
            "resources.limits must be quantities",
        ),
        c(
            "memory request above its limit",
            "version: 8.0.4\nresources: {requests: {memory: 4Gi}, limits: {memory: 2Gi}}",
            "resources.requests.memory must not be more than resources.limits.memory",
        ),
        c(
            "restore Job memory that is not a quantity",
            "version: 8.0.4\nbootstrap:\n  fromBackup:\n    backupName: b1\n    resources: {requests: {memory: plenty}}",
            "resources.requests must be quantities",
        ),
        c(
            "two users with the same name and db",
            "version: 8.0.4\nusers:\n- {name: app, roles: [{name: read, db: x}]}\n- {name: app, roles: [{name: readWrite, db: x}]}",
            "Duplicate value",
        ),
        c("user without roles", "version: 8.0.4\nusers:\n- {name: app}", "spec.users[0].roles: Required value"),
        c(
            "user with an empty role list",
            "version: 8.0.4\nusers:\n- {name: app, roles: []}",
            "should have at least 1 items",
        ),
        c(
            "user name reserved for the operator",
            "version: 8.0.4\nusers:\n- {name: mongo-operator-admin, roles: [{name: root, db: admin}]}",
            "reserved for the operator's own users",
        ),
        c(
            "load balancer without source ranges",
            "version: 8.0.4\nexpose: {type: LoadBalancer}",
            "sourceRanges must list at least one CIDR",
        ),
        c(
            "load balancer settings on a ClusterIP cluster",
            "version: 8.0.4\nexpose: {type: ClusterIP, loadBalancer: {sourceRanges: [10.0.0.0/8]}}",
            "only allowed when expose.type is LoadBalancer",
        ),
        c(
            "source range that is not a CIDR",
            "version: 8.0.4\nexpose: {type: LoadBalancer, loadBalancer: {sourceRanges: [office]}}",
            "must be an IP range in CIDR notation",
        ),
        c(
            "an internal load balancer made public by an annotation",
            "version: 8.0.4\nexpose: {type: LoadBalancer, loadBalancer: {sourceRanges: [10.0.0.0/8], annotations: {service.beta.kubernetes.io/aws-load-balancer-scheme: internet-facing}}}",
            "may not set the annotations that keep an internal load balancer internal",
        ),
        c(
            "a member in two roles",
            "version: 8.0.4\nmembers: 3\nmemberRoles:\n- {ordinals: [1], role: Hidden}\n- {ordinals: [1, 2], role: NonVoting}",
            "memberRoles lists an ordinal in two entries",
        ),
        c(
            "an arbiter beside an odd number of voting members",
            "version: 8.0.4\nmembers: 3\narbiter: {enabled: true}",
            "arbiter.enabled needs 2, 4 or 6 voting members",
        ),
        c(
            "an arbiter beyond seven votes",
            "version: 8.0.4\nmembers: 8\narbiter: {enabled: true}",
            "arbiter.enabled needs 2, 4 or 6 voting members",
        ),
        c(
            "an arbiter with members exposed one by one",
            "version: 8.0.4\nmembers: 2\narbiter: {enabled: true}\nexpose: {perMember: {hostPattern: \"db-{ordinal}.example.internal\", loadBalancer: {sourceRanges: [10.0.0.0/8]}}}",
            "arbiter.enabled cannot be combined with expose.perMember",
        ),
        c(
            "a delayed member without its delay",
            "version: 8.0.4\nmembers: 3\nmemberRoles: [{ordinals: [2], role: Delayed}]",
            "delaySeconds is required for a Delayed member",
        ),
        c(
            "a delay on a member that is not delayed",
            "version: 8.0.4\nmembers: 3\nmemberRoles: [{ordinals: [2], role: Hidden, delaySeconds: 60}]",
            "delaySeconds is required for a Delayed member and only allowed for one",
        ),
        c(
            "a priority on a hidden member",
            "version: 8.0.4\nmembers: 3\nmemberRoles: [{ordinals: [2], role: Hidden, priority: 5}]",
            "priority is only for Electable members",
        ),
        c(
            "a delay beyond the server's limit",
            "version: 8.0.4\nmembers: 3\nmemberRoles: [{ordinals: [2], role: Delayed, delaySeconds: 40000000}]",
            "should be less than or equal to 31622400",
        ),
        c(
            "members exposed one by one without TLS",
            "version: 8.0.4\ntls: {mode: Disabled}\nexpose: {perMember: {hostPattern: \"db-{ordinal}.example.internal\", loadBalancer: {sourceRanges: [10.0.0.0/8]}}}",
            "expose.perMember needs TLS",
        ),
        c(
            "members' external names without the ordinal in the first label",
            "version: 8.0.4\nexpose: {perMember: {hostPattern: \"db.{ordinal}.example.internal\", loadBalancer: {sourceRanges: [10.0.0.0/8]}}}",
            "must be a DNS name with {ordinal} in its first label",
        ),
        c(
            "members' external names that are one name for all",
            "version: 8.0.4\nexpose: {perMember: {hostPattern: db.example.internal, loadBalancer: {sourceRanges: [10.0.0.0/8]}}}",
            "must be a DNS name with {ordinal} in its first label",
        ),
        c(
            "members' load balancers without source ranges",
            "version: 8.0.4\nexpose: {perMember: {hostPattern: \"db-{ordinal}.example.internal\", loadBalancer: {}}}",
            "expose.perMember.loadBalancer.sourceRanges must list at least one CIDR",
        ),
        c(
            "members' internal load balancers made public by an annotation",
            "version: 8.0.4\nexpose: {perMember: {hostPattern: \"db-{ordinal}.example.internal\", loadBalancer: {sourceRanges: [10.0.0.0/8], annotations: {networking.gke.io/load-balancer-type: External}}}}",
            "may not set the annotations that keep an internal load balancer internal",
        ),
        c(
            "members exposed on both load balancers and node ports",
            "version: 8.0.4\nexpose: {perMember: {hostPattern: \"db-{ordinal}.example.internal\", loadBalancer: {sourceRanges: [10.0.0.0/8]}, nodePort: {basePort: 31017, sourceRanges: [10.0.0.0/8]}}}",
            "expose.perMember needs exactly one of loadBalancer and nodePort",
        ),
        c(
            "members exposed on neither",
            "version: 8.0.4\nexpose: {perMember: {hostPattern: \"db-{ordinal}.example.internal\"}}",
            "expose.perMember needs exactly one of loadBalancer and nodePort",
        ),
        c(
            "members on node ports without names",
            "version: 8.0.4\nexpose: {perMember: {nodePort: {basePort: 31017, sourceRanges: [10.0.0.0/8]}}}",
            "expose.perMember.nodePort needs hostPattern",
        ),
        c(
            "members on node ports without source ranges",
            "version: 8.0.4\nexpose: {perMember: {hostPattern: \"db-{ordinal}.example.internal\", nodePort: {basePort: 31017, sourceRanges: []}}}",
            "should have at least 1 items",
        ),
        c(
            "members on node ports past the last port",
            "version: 8.0.4\nmembers: 3\nexpose: {perMember: {hostPattern: \"db-{ordinal}.example.internal\", nodePort: {basePort: 65534, sourceRanges: [10.0.0.0/8]}}}",
            "basePort + members - 1 must be a port",
        ),
        c("unknown deletion policy", "version: 8.0.4\ndeletionPolicy: Destroy", "Unsupported value: \"Destroy\""),
        c(
            "unknown anti-affinity mode",
            "version: 8.0.4\nscheduling: {podAntiAffinity: Sometimes}",
            "Unsupported value: \"Sometimes\"",
        ),
        c(
            "disruption budget that breaks the majority",
            "version: 8.0.4\nmembers: 3\npodDisruptionBudget: {maxUnavailable: 2}",
            "must leave a majority of the voting members running",
        ),
        c(
            "bootstrap from both a backup name and a location",
            "version: 8.0.4\nbootstrap:\n  fromBackup:\n    backupName: b1\n    location:\n      path: p/manifest.json\n      destination: {name: d, s3: {bucket: bkt, credentialsSecretRef: {name: c}}}",
            "exactly one of backupName or location",
        ),
        c(
            "bootstrap from a location that nothing vouches for",
            "version: 8.0.4\nbootstrap:\n  fromBackup:\n    location:\n      path: p/manifest.json\n      destination: {name: d, s3: {bucket: bkt, credentialsSecretRef: {name: c}}}",
            "needs encryptionKeySecretRef or checksum",
        ),
        c(
            "bootstrap with a checksum that is not sha256",
            "version: 8.0.4\nbootstrap:\n  fromBackup:\n    checksum: md5:abc\n    location:\n      path: p/manifest.json\n      destination: {name: d, s3: {bucket: bkt, credentialsSecretRef: {name: c}}}",
            "checksum",
        ),
        c(
            "a point in time from a location without the key",
            "version: 8.0.4\nbootstrap:\n  fromBackup:\n    pointInTime: latest\n    checksum: sha256:0000000000000000000000000000000000000000000000000000000000000000\n    location:\n      path: p/orders\n      destination: {name: d, s3: {bucket: bkt, credentialsSecretRef: {name: c}}}",
            "or location with encryptionKeySecretRef",
        ),
        c(
            "a point in time that is not a second",
            "version: 8.0.4\nbootstrap:\n  fromBackup:\n    backupName: every-2h\n    pointInTime: yesterday",
            "pointInTime",
        ),
        c(
            "bootstrap from nothing",
            "version: 8.0.4\nbootstrap: {fromBackup: {}}",
            "exactly one of backupName or location",
        ),
        Invalid {
            what: "cluster name too long for derived names",
            yaml: cluster("a-very-long-cluster-name-that-goes-past-forty", "version: 8.0.4"),
            message: "at most 40 characters",
        },
        Invalid {
            what: "cluster name starting with a digit",
            yaml: cluster("1db", "version: 8.0.4"),
            message: "must start with a letter",
        },
        // MongoBackup
        b("backup without cluster", &format!("destinations:\n{S3}"), "spec.clusterRef: Required value"),
        b(
            "backup Job cpu that is not a quantity",
            &format!("clusterRef: {{name: db}}\ndestinations:\n{S3}resources: {{requests: {{cpu: fast}}}}"),
            "resources.requests must be quantities",
        ),
        b("backup without destinations", "clusterRef: {name: db}", "spec.destinations: Required value"),
        b(
            "backup with an empty destination list",
            "clusterRef: {name: db}\ndestinations: []",
            "should have at least 1 items",
        ),
        b(
            "destination with two stores",
            "clusterRef: {name: db}\ndestinations:\n- name: d\n  s3: {bucket: bkt, credentialsSecretRef: {name: c}}\n  gcs: {bucket: bkt, serviceAccountKeySecretRef: {name: c, key: k}}",
            "exactly one of s3, gcs or azure",
        ),
        b(
            "destination with no store",
            "clusterRef: {name: db}\ndestinations:\n- name: d",
            "exactly one of s3, gcs or azure",
        ),
        b(
            "two destinations with one name",
            &format!("clusterRef: {{name: db}}\ndestinations:\n{S3}{S3}"),
            "Duplicate value",
        ),
        b(
            "cron expression in words",
            &format!("clusterRef: {{name: db}}\nschedule: {{cron: every two hours}}\ndestinations:\n{S3}"),
            "five-field cron expression",
        ),
        b(
            "verification cron on a one-off backup",
            &format!("clusterRef: {{name: db}}\nverification: {{cron: '30 4 * * 0'}}\ndestinations:\n{S3}"),
            "verification.cron applies only to a schedule",
        ),
        b(
            "verification with both every and a cron",
            &format!(
                "clusterRef: {{name: db}}\nschedule: {{cron: '0 */2 * * *'}}\nunencrypted: true\nverification: {{every: 3, cron: '30 4 * * 0'}}\ndestinations:\n{S3}"
            ),
            "verification.every and verification.cron",
        ),
        b(
            "verification cron in words",
            &format!(
                "clusterRef: {{name: db}}\nschedule: {{cron: '0 */2 * * *'}}\nunencrypted: true\nverification: {{cron: sunday mornings}}\ndestinations:\n{S3}"
            ),
            "verification.cron must be a five-field cron expression",
        ),
        b(
            "retention on a one-off backup",
            &format!("clusterRef: {{name: db}}\nretention: {{keepLast: 3}}\ndestinations:\n{S3}"),
            "retention applies only to scheduled backups",
        ),
        b(
            "empty retention",
            &format!("clusterRef: {{name: db}}\nschedule: {{cron: '0 * * * *'}}\nretention: {{}}\ndestinations:\n{S3}"),
            "retention needs keepLast, maxAge or both",
        ),
        b(
            "retention age in words",
            &format!(
                "clusterRef: {{name: db}}\nschedule: {{cron: '0 * * * *'}}\nretention: {{maxAge: 2 weeks}}\ndestinations:\n{S3}"
            ),
            "spec.retention.maxAge in body should match",
        ),
        b(
            "schedule that does not say whether it encrypts",
            &format!("clusterRef: {{name: db}}\nschedule: {{cron: '0 */2 * * *'}}\ndestinations:\n{S3}"),
            "a schedule needs encryption.keySecretRef, or unencrypted: true",
        ),
        b(
            "backup both encrypted and unencrypted",
            &format!(
                "clusterRef: {{name: db}}\nunencrypted: true\nencryption: {{keySecretRef: {{name: k, key: k}}}}\ndestinations:\n{S3}"
            ),
            "contradict each other",
        ),
        b(
            "unknown compression",
            &format!("clusterRef: {{name: db}}\ncompression: lz4\ndestinations:\n{S3}"),
            "Unsupported value: \"lz4\"",
        ),
        b(
            "endpoint without a scheme",
            "clusterRef: {name: db}\ndestinations:\n- name: d\n  s3: {bucket: bkt, endpoint: s3.example.com, credentialsSecretRef: {name: c}}",
            "s3.endpoint must be an http:// or https:// URL",
        ),
        b(
            "suspend on a one-off backup",
            &format!("clusterRef: {{name: db}}\nsuspend: true\ndestinations:\n{S3}"),
            "suspend applies only to scheduled backups",
        ),
        Invalid {
            what: "scheduled backup name too long for the backups it names",
            yaml: backup(
                "a-schedule-name-that-is-much-too-long-for-children",
                &format!("clusterRef: {{name: db}}\nschedule: {{cron: '0 * * * *'}}\ndestinations:\n{S3}"),
            ),
            message: "must be at most 40 characters",
        },
        // NetworkPolicyAttachment
        a("attachment without peers", "clusterRef: {name: db}\nfrom: []", "should have at least 1 items"),
        a("empty peer", "clusterRef: {name: db}\nfrom: [{}]", "needs podSelector, namespaceSelector or ipBlock"),
        a(
            "address range mixed with a selector",
            "clusterRef: {name: db}\nfrom:\n- {ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}",
            "ipBlock cannot be combined with podSelector or namespaceSelector",
        ),
        a(
            "public address range",
            "clusterRef: {name: db}\nfrom:\n- ipBlock: {cidr: 8.8.8.0/24}",
            "must be a private range",
        ),
        a(
            "the whole internet",
            "clusterRef: {name: db}\nfrom:\n- ipBlock: {cidr: 0.0.0.0/0}",
            "must be a private range",
        ),
        a(
            "malformed address range",
            "clusterRef: {name: db}\nfrom:\n- ipBlock: {cidr: 10.0.0.0/33}",
            "must be an IP range in CIDR notation",
        ),
        a(
            "exception outside the range",
            "clusterRef: {name: db}\nfrom:\n- ipBlock: {cidr: 10.20.0.0/16, except: [10.30.0.0/24]}",
            "every entry of ipBlock.except must be a CIDR inside ipBlock.cidr",
        ),
        a(
            "unknown port",
            "clusterRef: {name: db}\nfrom: [{podSelector: {}}]\nports: [ssh]",
            "Unsupported value: \"ssh\"",
        ),
    ]
}

fn invalid_changes() -> Vec<InvalidChange> {
    let scheduled = backup(
        "sched",
        &format!("clusterRef: {{name: db}}\nschedule: {{cron: '0 * * * *'}}\nunencrypted: true\ndestinations:\n{S3}"),
    );
    vec![
        InvalidChange {
            what: "shrinking storage",
            yaml: cluster("shrink", "version: 8.0.4\nstorage: {size: 20Gi}"),
            patch: json!({"spec": {"storage": {"size": "10Gi"}}}),
            message: "storage.size can grow but never shrink",
        },
        InvalidChange {
            what: "changing the storage class",
            yaml: cluster("sc", "version: 8.0.4\nstorage: {size: 20Gi, storageClassName: standard}"),
            patch: json!({"spec": {"storage": {"storageClassName": "fast"}}}),
            message: "storage.storageClassName cannot be changed after creation",
        },
        InvalidChange {
            what: "skipping a major release",
            yaml: cluster("jump", "version: 6.0.15"),
            patch: json!({"spec": {"version": "8.0.4"}}),
            message: "version 8.0.4 cannot be reached from 6.0.15: MongoDB upgrades one major release at a time",
        },
        InvalidChange {
            what: "going down two major releases",
            yaml: cluster("fall", "version: 8.0.4"),
            patch: json!({"spec": {"version": "6.0.15"}}),
            message: "MongoDB downgrades one major release at a time",
        },
        InvalidChange {
            what: "adding bootstrap to a running cluster",
            yaml: cluster("boot", "version: 8.0.4"),
            patch: json!({"spec": {"bootstrap": {"fromBackup": {"backupName": "b1"}}}}),
            message: "bootstrap is only read when the cluster is created",
        },
        InvalidChange {
            what: "pointing a backup schedule at another cluster",
            yaml: scheduled.clone(),
            patch: json!({"spec": {"clusterRef": {"name": "other"}}}),
            message: "clusterRef cannot be changed",
        },
        InvalidChange {
            what: "turning a schedule into a one-off backup",
            yaml: scheduled,
            patch: json!({"spec": {"schedule": null}}),
            message: "cannot switch between one-off and scheduled",
        },
        InvalidChange {
            what: "changing a one-off backup",
            yaml: backup("once", &format!("clusterRef: {{name: db}}\ndestinations:\n{S3}")),
            patch: json!({"spec": {"compression": "gzip"}}),
            message: "a one-off backup cannot be changed once created",
        },
        InvalidChange {
            what: "pointing an attachment at another cluster",
            yaml: attachment("att", "clusterRef: {name: db}\nfrom: [{podSelector: {}}]"),
            patch: json!({"spec": {"clusterRef": {"name": "other"}}}),
            message: "clusterRef cannot be changed",
        },
    ]
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn examples_are_accepted() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "examples").await;
    let mut failures = Vec::new();
    for (path, yaml) in examples() {
        for doc in yaml.split("\n---\n").filter(|d| d.contains("kind:")) {
            if let Err(e) = create(&client, &ns, doc, true).await {
                failures.push(format!("{}: {e}", path.display()));
            }
        }
    }
    delete_namespace(&client, &ns).await;
    assert!(failures.is_empty(), "examples refused:\n{}", failures.join("\n"));
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn invalid_manifests_are_refused_with_a_clear_message() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "invalid").await;
    let cases = invalid_creates();
    assert!(cases.len() >= 30, "the table should cover at least 30 invalid manifests");
    let mut failures = Vec::new();
    for case in &cases {
        failures.extend(unexpected(case.what, case.message, create(&client, &ns, &case.yaml, true).await));
    }
    delete_namespace(&client, &ns).await;
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn forbidden_changes_are_refused_with_a_clear_message() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "changes").await;
    let mut failures = Vec::new();
    for case in invalid_changes() {
        let obj =
            create(&client, &ns, &case.yaml, false).await.unwrap_or_else(|e| panic!("{}: creating: {e}", case.what));
        let name = obj.metadata.name.clone().unwrap_or_default();
        failures.extend(unexpected(
            case.what,
            case.message,
            merge_patch(&client, &ns, &case.yaml, &name, case.patch.clone()).await,
        ));
        let (_, ar) = resolve(&client, &case.yaml).await;
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(client.clone(), &ns, &ar);
        let _ = api.delete(&name, &Default::default()).await;
    }
    delete_namespace(&client, &ns).await;
    assert!(failures.is_empty(), "changes not refused as expected:\n{}", failures.join("\n"));
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn allowed_changes_are_accepted_and_defaults_are_applied() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "defaults").await;
    let yaml = cluster("grow", "version: 8.0.4");
    let created = create(&client, &ns, &yaml, false).await.expect("minimal cluster");
    let spec = &created.data["spec"];
    assert_eq!(spec["members"], 3);
    assert_eq!(spec["storage"]["size"], "10Gi");
    assert_eq!(spec["deletionPolicy"], "Retain");
    assert_eq!(spec["expose"]["type"], "ClusterIP");
    assert_eq!(spec["podDisruptionBudget"], json!({"enabled": true, "maxUnavailable": 1}));
    assert_eq!(spec["scheduling"]["podAntiAffinity"], "Required");
    // One major release up is allowed at admission (the operator checks the running version
    // and featureCompatibilityVersion itself), as is a patch downgrade.
    let seven = cluster("seven", "version: 7.0.12");
    create(&client, &ns, &seven, false).await.expect("a 7.0 cluster");
    merge_patch(&client, &ns, &seven, "seven", json!({"spec": {"version": "8.0.4"}})).await.expect("7.0 → 8.0");
    merge_patch(&client, &ns, &seven, "seven", json!({"spec": {"version": "7.0.14"}})).await.expect("8.0 → 7.0");
    // Growing storage, scaling and upgrading are one-field changes that must be allowed.
    let grown = merge_patch(
        &client,
        &ns,
        &yaml,
        "grow",
        json!({"spec": {"storage": {"size": "20Gi"}, "members": 5, "version": "8.0.5"}}),
    )
    .await
    .expect("growing storage and scaling are allowed");
    assert_eq!(grown.data["spec"]["storage"]["size"], "20Gi");
    // An arbiter: beside two members, and beside three of which one is delayed (two vote);
    // its write concern defaults to majority.
    let psa = cluster("psa", "version: 8.0.4\nmembers: 2\narbiter: {enabled: true}");
    let created = create(&client, &ns, &psa, false).await.expect("two members and an arbiter");
    assert_eq!(created.data["spec"]["arbiter"]["defaultWriteConcern"], "Majority");
    let delayed = "version: 8.0.4\nmembers: 3\narbiter: {enabled: true, defaultWriteConcern: One}\nmemberRoles: [{ordinals: [2], role: Delayed, delaySeconds: 3600}]";
    create(&client, &ns, &cluster("psa-delayed", delayed), false).await.expect("an arbiter beside a delayed member");
    merge_patch(&client, &ns, &psa, "psa", json!({"spec": {"members": 4}})).await.expect("2 → 4 members with it");
    delete_namespace(&client, &ns).await;
}

#[test]
fn the_invalid_table_has_unique_descriptions() {
    let mut names: Vec<&str> = invalid_creates().iter().map(|c| c.what).collect();
    names.extend(invalid_changes().iter().map(|c| c.what));
    let total = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), total, "two cases share a description");
}
