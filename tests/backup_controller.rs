//! The MongoBackup controller on the local control plane: the real operator binary, simulated
//! 3-member clusters that keep their data in FerretDB (support/members.rs), and backup and
//! restore Pods run for real with the plans the operator wrote (support/job_runner.rs), into
//! s3s-fs on loopback.

mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use mongo_operator::api::{BackupPhase, MongoBackup, MongoCluster, VerificationPhase};
use mongo_operator::controller::backup::trust::CREDENTIALS_LABEL;
use support::job_runner::JobRunner;
use support::members::SimMembers;
use support::operator::Operator;
use support::servers::{Ferret, S3_ACCESS_KEY, S3_SECRET_KEY, S3Server};
use support::*;

const BUCKET: &str = "backups";
const TIMEOUT: Duration = Duration::from_secs(120);
/// The clusters are isolated; their Jobs may reach the s3s-fs stores on loopback, any port.
const STORES_ON_LOOPBACK: &str =
    "  networkIsolation:\n    objectStores:\n      cidrs: [127.0.0.0/8]\n      ports: []\n";

struct Env {
    client: Client,
    ns: String,
    operator: Operator,
}

impl Env {
    async fn new(prefix: &str) -> Env {
        Env::with_args(prefix, &[]).await
    }

    /// With more arguments of `mongo-operator run`.
    async fn with_args(prefix: &str, args: &[&str]) -> Env {
        let client = client().await;
        install_crds(&client).await;
        let ns = namespace(&client, prefix).await;
        let operator = Operator::start_with(&ns, "", &[&["--leader-election", "false"], args].concat());
        Env { client, ns, operator }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn apply_yaml<K>(&self, yaml: &str) -> K
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        create_typed(&self.client, &self.ns, yaml).await
    }

    /// A 3-member simulated cluster with a primary and a caught-up secondary, keeping its data
    /// in a FerretDB of its own, whose images come from a private registry and whose members
    /// tolerate a taint.
    async fn cluster(&self, name: &str) -> Holding {
        self.apply_yaml::<MongoCluster>(&format!(
            "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\nmetadata:\n  name: {name}\nspec:\n  version: \"8.0.4\"\n  members: 3\n  imagePullSecrets: [{{name: regcred}}]\n  scheduling:\n    tolerations: [{{key: dedicated, value: mongodb, effect: NoSchedule}}]\n{STORES_ON_LOOPBACK}"
        ))
        .await;
        let held = self.holding(name).await;
        self.wait(&format!("MongoCluster {name} with a primary and a secondary to dump from"), || async {
            let status = self.api::<MongoCluster>().get(name).await.ok()?.status?;
            mongo_operator::controller::backup::source::dump_member(&status).filter(|d| d.state == "SECONDARY")
        })
        .await;
        held
    }

    /// Simulated members for a cluster applied already, keeping its data in a FerretDB.
    async fn holding(&self, name: &str) -> Holding {
        let ferret = Ferret::start();
        let sim = SimMembers::holding_data(&self.client, &self.ns, name, &ferret.address).await;
        Holding { sim, ferret }
    }

    /// Secrets with the S3 keys (one right, one wrong, both labelled for use as store
    /// credentials; one right but not labelled) and an encryption key.
    async fn secrets(&self) {
        let labelled = format!("  labels: {{{CREDENTIALS_LABEL}: \"true\"}}\n");
        for (name, secret, labels) in [
            ("s3-keys", S3_SECRET_KEY, labelled.as_str()),
            ("s3-wrong-keys", "not-the-secret", labelled.as_str()),
            ("s3-unlabelled", S3_SECRET_KEY, ""),
        ] {
            self.apply_yaml::<Secret>(&format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{labels}stringData:\n  AWS_ACCESS_KEY_ID: {S3_ACCESS_KEY}\n  AWS_SECRET_ACCESS_KEY: {secret}\n"
            ))
            .await;
        }
        self.apply_yaml::<Secret>("apiVersion: v1\nkind: Secret\nmetadata:\n  name: backup-key\nstringData:\n  key: a long random passphrase for the test\n").await;
    }

    async fn wait<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        self.wait_long(what, TIMEOUT, check).await
    }

    async fn wait_long<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let found = tokio::time::timeout(timeout, async {
            loop {
                if let Some(v) = check().await {
                    return v;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await;
        match found {
            Ok(v) => v,
            Err(_) => {
                let log = std::fs::read_to_string(&self.operator.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let backups =
                    self.api::<MongoBackup>().list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
                let states: Vec<_> = backups.iter().map(|b| (b.name_any(), b.status.clone())).collect();
                panic!(
                    "timed out waiting for {what}; backups: {states:#?}\noperator log tail:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }

    /// Waits until backup `name` waits for `reason`, checks that it has no Job, and returns
    /// its Ready message.
    async fn held(&self, name: &str, reason: &str) -> String {
        let message = self
            .wait(&format!("{name} waiting as {reason}"), || async {
                let b = self.backup(name).await?;
                let ready = b.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
                (ready.reason == reason).then_some(ready.message)
            })
            .await;
        let job = format!("{name}-backup");
        assert!(self.api::<Job>().get_opt(&job).await.expect("get").is_none(), "{name} has a Job");
        message
    }

    async fn backup(&self, name: &str) -> Option<MongoBackup> {
        self.api::<MongoBackup>().get_opt(name).await.ok().flatten()
    }

    async fn phase(&self, name: &str, phase: BackupPhase) -> MongoBackup {
        self.wait(&format!("MongoBackup {name} {phase:?}"), || async {
            self.backup(name).await.filter(|b| b.status.as_ref().and_then(|s| s.phase) == Some(phase))
        })
        .await
    }

    async fn reason(&self, name: &str) -> Option<String> {
        let b = self.backup(name).await?;
        b.status?.conditions.into_iter().find(|c| c.type_ == "Ready").map(|c| c.reason)
    }

    /// The Events with this reason once at least `at_least` of them are recorded: the operator
    /// records an Event after the change it reports, so a test that saw the change waits for it.
    async fn recorded(&self, reason: &str, at_least: usize) -> Vec<Event> {
        self.wait(&format!("{at_least} {reason} Event(s)"), || async {
            let events = self.events(reason).await;
            (events.len() >= at_least).then_some(events)
        })
        .await
    }

    async fn events(&self, reason: &str) -> Vec<Event> {
        let events: Api<Event> = self.api();
        events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    }

    async fn children(&self, schedule: &str) -> Vec<MongoBackup> {
        let lp = ListParams::default().labels(&format!("mongo.operator.rs/schedule={schedule}"));
        self.api::<MongoBackup>().list(&lp).await.expect("list").items
    }

    async fn set_status(&self, name: &str, status: serde_json::Value) {
        self.api::<MongoBackup>()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "status": status })))
            .await
            .expect("patch status");
    }

    /// A backup taken in the name of `policy`, as its scheduler creates them (labelled and
    /// owned by it), for tests whose schedule does not fire while they run.
    async fn child_of(&self, policy: &MongoBackup, name: &str, destinations: &str) {
        let mut child: MongoBackup =
            serde_yaml::from_str(&one_off(name, &policy.spec.cluster_ref.name, destinations, "")).expect("yaml");
        child.metadata.labels = Some([("mongo.operator.rs/schedule".to_string(), policy.name_any())].into());
        let owner = serde_json::json!([{
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoBackup", "name": policy.name_any(),
            "uid": policy.uid(), "controller": true, "blockOwnerDeletion": true,
        }]);
        child.metadata.owner_references = Some(serde_json::from_value(owner).expect("owner"));
        self.api::<MongoBackup>().create(&PostParams::default(), &child).await.expect("create child");
    }

    async fn finish(self) {
        self.operator.kill().await;
        delete_namespace(&self.client, &self.ns).await;
    }
}

/// A cluster's simulated members and the FerretDB holding its data.
struct Holding {
    sim: SimMembers,
    ferret: Ferret,
}

fn destination(name: &str, store: &S3Server, secret: &str) -> String {
    format!(
        "  - name: {name}\n    s3:\n      bucket: {BUCKET}\n      prefix: prod\n      endpoint: {}\n      forcePathStyle: true\n      credentialsSecretRef:\n        name: {secret}\n",
        store.endpoint()
    )
}

fn one_off(name: &str, cluster: &str, destinations: &str, extra: &str) -> String {
    format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoBackup\nmetadata:\n  name: {name}\nspec:\n  clusterRef:\n    name: {cluster}\n  destinations:\n{destinations}{extra}"
    )
}

async fn seed(ferret: &Ferret) {
    let client = ferret.client().await;
    let docs: Vec<mongodb::bson::Document> = (0..500)
        .map(|i| mongodb::bson::doc! { "_id": i, "device": format!("d{}", i % 7), "v": i as f64 / 3.0 })
        .collect();
    client.database("iot").collection("readings").insert_many(docs).await.expect("seed");
}

#[tokio::test]
#[ignore = "needs the local control plane and the test tools: run `make test`"]
async fn one_off_backups_run_one_at_a_time_and_report_what_they_stored() {
    let env = Env::new("backup-once").await;
    let (a, b) = (S3Server::start(&[BUCKET]), S3Server::start(&[BUCKET]));
    env.secrets().await;
    let orders = env.cluster("orders").await;
    seed(&orders.ferret).await;
    let runner = JobRunner::start(env.client.clone(), &env.ns);
    let both = format!("{}{}", destination("ovh", &a, "s3-keys"), destination("scaleway", &b, "s3-keys"));
    let encrypted = "  encryption:\n    keySecretRef:\n      name: backup-key\n      key: key\n";

    // The first backup's process is slow; a second backup of the same cluster waits for it.
    runner.hold();
    env.apply_yaml::<MongoBackup>(&one_off("first", "orders", &both, encrypted)).await;
    env.phase("first", BackupPhase::Running).await;
    // The second asks for more CPU and memory than the bounded default.
    let bigger = "  resources:\n    requests: {cpu: '2', memory: 1Gi}\n    limits: {memory: 2Gi}\n";
    env.apply_yaml::<MongoBackup>(&one_off("second", "orders", &both, bigger)).await;
    env.wait("second waiting for first", || async {
        (env.reason("second").await.as_deref() == Some("WaitingForAnotherBackup")).then_some(())
    })
    .await;
    let jobs: Api<Job> = env.api();
    assert!(jobs.get_opt("second-backup").await.expect("get").is_none(), "the second Job waits");
    runner.release();

    let first = env.phase("first", BackupPhase::Succeeded).await;
    let second = env.phase("second", BackupPhase::Succeeded).await;
    for backup in [&first, &second] {
        let status = backup.status.clone().expect("status");
        let name = backup.name_any();
        assert_eq!(status.copies.len(), 2, "{name}: {status:?}");
        assert!(status.checksum.as_deref().is_some_and(|c| c.starts_with("sha256:")), "{name}");
        assert!(status.size_bytes.unwrap_or(0) > 0 && status.size_human.is_some(), "{name}");
        assert!(
            status.mongodb_version.is_some() && status.start_time.is_some() && status.completion_time.is_some(),
            "{name}"
        );
        for store in [&a, &b] {
            let keys = store.keys(BUCKET);
            assert!(keys.contains(&format!("prod/orders/{name}/manifest.json")), "{name}: {keys:?}");
        }
    }
    assert!(a.keys(BUCKET).contains(&"prod/orders/first/archive.mongodump.zst.age".to_string()));
    assert_eq!(
        first.status.as_ref().map(|s| s.copies[0].url.clone()),
        Some(format!("s3://{BUCKET}/prod/orders/first/manifest.json"))
    );

    // The Job: the cluster's image and pull secret, no API token, and only the Secret keys the
    // plan reads. It dumps one secondary alone, with --oplog, and says which.
    let job = jobs.get("first-backup").await.expect("job");
    let pod = job.spec.clone().expect("spec").template.spec.expect("pod");
    let plan =
        pod.containers[0].env.iter().flatten().find(|e| e.name == "MONGO_OPERATOR_PLAN").and_then(|e| e.value.clone());
    let plan: mongo_operator::backup::plan::BackupPlan = serde_json::from_str(&plan.expect("a plan")).expect("plan");
    let member = first.status.as_ref().and_then(|s| s.source_member.clone()).expect("the member dumped from");
    assert!(member.ends_with("(SECONDARY)"), "{member}");
    let pod_name = member.split(' ').next().expect("pod");
    assert_eq!(
        plan.source.uri,
        format!("mongodb://{pod_name}.orders-members.{}.svc.cluster.local:27017/?directConnection=true", env.ns)
    );
    assert!(plan.oplog, "a consistent dump: --oplog");
    assert_ne!(Some(pod_name.to_string()), orders.sim.primary(), "not the primary");
    assert_eq!(pod.containers[0].image.as_deref(), Some("mongo:8.0.4"));
    let pull: Vec<String> = pod.image_pull_secrets.iter().flatten().map(|s| s.name.clone()).collect();
    assert_eq!(pull, ["regcred"]);
    let tolerated: Vec<Option<String>> = pod.tolerations.iter().flatten().map(|t| t.key.clone()).collect();
    assert_eq!(tolerated, [Some("dedicated".to_string())], "it runs where the members may");
    let members: Api<k8s_openapi::api::apps::v1::StatefulSet> = env.api();
    let sts = members.get("orders").await.expect("statefulset");
    let pull: Vec<String> =
        sts.spec.and_then(|s| s.template.spec?.image_pull_secrets).into_iter().flatten().map(|s| s.name).collect();
    assert_eq!(pull, ["regcred"], "the members' Pods get it too");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let memory_limit = |job: &Job| {
        let pod = job.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        let resources = pod.and_then(|p| p.containers[0].resources.as_ref());
        resources.and_then(|r| r.limits.as_ref()?.get("memory")).map(|q| q.0.clone())
    };
    assert_eq!(memory_limit(&job).as_deref(), Some("1Gi"), "the bounded default");
    let second_job = jobs.get("second-backup").await.expect("second job");
    assert_eq!(memory_limit(&second_job).as_deref(), Some("2Gi"), "spec.resources");
    let projected: Vec<(String, Vec<String>)> = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.projected)
        .flat_map(|p| p.sources.unwrap_or_default())
        .filter_map(|s| s.secret)
        .map(|s| (s.name, s.items.unwrap_or_default().into_iter().map(|i| i.key).collect()))
        .collect();
    let secrets: Vec<&String> = projected.iter().map(|(name, _)| name).collect();
    assert_eq!(secrets.len(), 4, "internal (backup password only), S3 keys, encryption key, members' CA: {secrets:?}");
    // Of the members' TLS Secret, the CA alone: never the members' private key.
    let tls = projected.iter().find(|(name, _)| name == "orders-tls").map(|(_, keys)| keys.clone());
    assert_eq!(tls, Some(vec!["ca.crt".to_string()]), "{projected:?}");
    env.recorded("BackupSucceeded", 2).await;

    // A reconcile that starts from a copy of `first` older than its success (a cache can lag
    // the controller's own status write) finishes nothing a second time.
    let succeeded = env.events("BackupSucceeded").await.len();
    let mut stale = first.clone();
    if let Some(status) = stale.status.as_mut() {
        status.phase = Some(BackupPhase::Running);
    }
    mongo_operator::controller::backup::reconcile(
        std::sync::Arc::new(stale),
        std::sync::Arc::new(support::operator::in_process_context(&env.client, &env.ns)),
    )
    .await
    .expect("a reconcile from the stale copy");
    assert_eq!(env.backup("first").await.and_then(|b| b.status), first.status, "the success is not written again");
    assert_eq!(env.events("BackupSucceeded").await.len(), succeeded, "no second Event");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane and the test tools: run `make test`"]
async fn an_endpoint_the_administrator_did_not_allow_never_gets_a_job_or_credentials() {
    let env = Env::with_args("backup-endpoint", &["--allowed-endpoint", "https://s3.fr-par.scw.cloud"]).await;
    let store = S3Server::start(&[BUCKET]);
    env.secrets().await;
    env.apply_yaml::<MongoBackup>(&one_off("elsewhere", "payments", &destination("s3", &store, "s3-keys"), "")).await;
    let message = env.held("elsewhere", "EndpointNotAllowed").await;
    assert!(message.contains(&format!("destination s3 ({})", store.endpoint())), "{message}");
    assert!(message.contains("https://s3.fr-par.scw.cloud"), "{message}");
    assert_eq!(store.keys(BUCKET), Vec::<String>::new());
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane and the test tools: run `make test`"]
async fn a_failing_backup_is_failed_with_its_reason_and_missing_inputs_wait() {
    let env = Env::new("backup-fail").await;
    let store = S3Server::start(&[BUCKET]);
    env.secrets().await;

    // No such cluster yet: the backup waits and says why.
    env.apply_yaml::<MongoBackup>(&one_off("early", "payments", &destination("s3", &store, "s3-keys"), "")).await;
    env.wait("early waiting for its cluster", || async {
        (env.reason("early").await.as_deref() == Some("ClusterNotFound")).then_some(())
    })
    .await;

    let _payments = env.cluster("payments").await;
    let _runner = JobRunner::start(env.client.clone(), &env.ns);
    env.phase("early", BackupPhase::Succeeded).await;

    // A Secret that does not exist: waits, with the missing key named.
    env.apply_yaml::<MongoBackup>(&one_off("no-secret", "payments", &destination("s3", &store, "nowhere"), "")).await;
    env.wait("no-secret waiting for its Secret", || async {
        (env.reason("no-secret").await.as_deref() == Some("SecretMissing")).then_some(())
    })
    .await;

    // The right keys in a Secret its owner did not label for store credentials: waits, and
    // no Job mounts it.
    env.apply_yaml::<MongoBackup>(&one_off("borrowed", "payments", &destination("s3", &store, "s3-unlabelled"), ""))
        .await;
    let message = env.held("borrowed", "CredentialsNotLabelled").await;
    assert!(message.contains("s3-unlabelled") && message.contains(CREDENTIALS_LABEL), "{message}");

    // A passphrase too short to hold against offline guessing: waits, and no Job.
    env.apply_yaml::<Secret>(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: short-key\nstringData:\n  key: sixteen chars ok\n",
    )
    .await;
    let short = "  encryption:\n    keySecretRef:\n      name: short-key\n      key: key\n";
    env.apply_yaml::<MongoBackup>(&one_off("weak", "payments", &destination("s3", &store, "s3-keys"), short)).await;
    let message = env.held("weak", "WeakEncryptionKey").await;
    assert!(message.contains("has 16 characters; at least 32"), "{message}");

    // Wrong S3 credentials: every attempt fails for real, and the backup says why, in its
    // own words: what the store's server answered stays in the Job's log.
    env.apply_yaml::<MongoBackup>(&one_off("denied", "payments", &destination("s3", &store, "s3-wrong-keys"), ""))
        .await;
    let failed = env.phase("denied", BackupPhase::Failed).await;
    let error = failed.status.and_then(|s| s.error).unwrap_or_default();
    assert!(error.contains("destination s3") && error.contains("(HTTP 403 Forbidden)"), "{error}");
    // The Event is recorded just after the status is written.
    let notes: Vec<String> = env
        .wait("the BackupFailed Event", || async {
            let notes: Vec<String> = env.events("BackupFailed").await.into_iter().filter_map(|e| e.note).collect();
            (!notes.is_empty()).then_some(notes)
        })
        .await;
    for text in notes.iter().chain([&error]) {
        assert!(!text.contains('<') && !text.contains("Signature"), "the store's response body is echoed: {text}");
    }
    assert!(store.keys(BUCKET).iter().all(|k| !k.contains("denied")));
    env.finish().await;
}

fn schedule(name: &str, cluster: &str, cron: &str, extra: &str, store: &S3Server) -> String {
    // A schedule says whether its backups are encrypted; these test the schedule, not that.
    let plain = "  unencrypted: true\n";
    let extra = if extra.contains("encryption:") { extra.to_string() } else { format!("{extra}{plain}") };
    format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoBackup\nmetadata:\n  name: {name}\nspec:\n  clusterRef:\n    name: {cluster}\n  schedule:\n    cron: \"{cron}\"\n{extra}  destinations:\n{}",
        destination("s3", store, "s3-keys")
    )
}

#[tokio::test]
#[ignore = "needs the local control plane and the test tools: run `make test`"]
async fn schedules_run_on_time_catch_up_once_respect_suspend_and_deadline_and_prune() {
    let env = Env::new("backup-schedule").await;
    let store = S3Server::start(&[BUCKET]);
    env.secrets().await;
    let _events = env.cluster("events").await;
    let _runner = JobRunner::start(env.client.clone(), &env.ns);

    // Every minute: the first run is named for its minute and succeeds.
    env.apply_yaml::<MongoBackup>(&schedule("minutely", "events", "* * * * *", "", &store)).await;
    let child =
        env.wait("the first scheduled backup", || async { env.children("minutely").await.into_iter().next() }).await;
    let created = child.metadata.creation_timestamp.clone().expect("created").0;
    let minute = chrono::DateTime::<chrono::Utc>::from_timestamp(created.as_second(), 0)
        .expect("time")
        .format("%Y%m%d%H%M")
        .to_string();
    assert!(
        child.name_any() == format!("minutely-{minute}") || created.as_second() % 60 < 5,
        "{} created at {created}",
        child.name_any()
    );
    env.phase(&child.name_any(), BackupPhase::Succeeded).await;
    let policy = env
        .wait("the schedule to record its success", || async {
            env.backup("minutely")
                .await
                .filter(|p| p.status.as_ref().and_then(|s| s.last_successful_backup.clone()) == Some(child.name_any()))
        })
        .await;
    let status = policy.status.expect("status");
    assert_eq!(status.phase, Some(BackupPhase::Scheduled));
    assert!(status.next_schedule_time.is_some_and(|t| t.0 > created));
    env.api::<MongoBackup>()
        .patch("minutely", &PatchParams::default(), &Patch::Merge(&serde_json::json!({"spec": {"suspend": true}})))
        .await
        .expect("suspend");

    // The operator was "down" for three hours: one backup, for the latest hour, not three.
    env.apply_yaml::<MongoBackup>(&schedule("hourly", "events", "0 * * * *", "", &store)).await;
    env.phase("hourly", BackupPhase::Scheduled).await;
    let three_hours_ago = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_hours(3);
    env.set_status("hourly", serde_json::json!({ "lastScheduleTime": three_hours_ago.to_string() })).await;
    let caught_up = env.wait("one catch-up backup", || async { env.children("hourly").await.into_iter().next() }).await;
    // Named for the latest hour mark before it was created.
    let created = caught_up.metadata.creation_timestamp.clone().expect("created").0.as_second();
    let hour = chrono::DateTime::<chrono::Utc>::from_timestamp(created - created % 3600, 0).expect("time");
    assert_eq!(caught_up.name_any(), format!("hourly-{}", hour.format("%Y%m%d%H%M")));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.children("hourly").await.len(), 1, "missed runs start once");

    // Suspended: nothing starts, whatever is due.
    env.apply_yaml::<MongoBackup>(&schedule("paused", "events", "* * * * *", "  suspend: true\n", &store)).await;
    let paused = env.phase("paused", BackupPhase::Suspended).await;
    assert!(paused.status.and_then(|s| s.next_schedule_time).is_none());
    env.set_status("paused", serde_json::json!({ "lastScheduleTime": three_hours_ago.to_string() })).await;

    // Past the starting deadline: recorded as missed, not started.
    env.apply_yaml::<MongoBackup>(&schedule(
        "yearly",
        "events",
        "0 0 1 1 *",
        "    startingDeadlineSeconds: 60\n",
        &store,
    ))
    .await;
    env.phase("yearly", BackupPhase::Scheduled).await;
    env.set_status("yearly", serde_json::json!({ "lastScheduleTime": "2024-06-01T00:00:00Z" })).await;
    env.wait("a MissedSchedule event", || async { (!env.events("MissedSchedule").await.is_empty()).then_some(()) })
        .await;
    let yearly = env.backup("yearly").await.expect("yearly");
    assert!(
        yearly.status.and_then(|s| s.last_schedule_time).is_some_and(|t| t.0.to_string().starts_with("2026-01-01"))
    );
    assert!(env.children("yearly").await.is_empty());
    assert!(env.children("paused").await.is_empty());

    env.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane and the test tools: run `make test`"]
async fn retention_prunes_the_oldest_backups_and_their_stored_copies() {
    let env = Env::new("backup-retention").await;
    let store = S3Server::start(&[BUCKET]);
    env.secrets().await;
    let _ledger = env.cluster("ledger").await;
    let runner = JobRunner::start(env.client.clone(), &env.ns);
    // A schedule that will not fire during the test keeps the last two; its backups are taken
    // as one-offs in its name, as the scheduler itself creates them.
    let policy = env
        .apply_yaml::<MongoBackup>(&schedule("keep2", "ledger", "0 0 1 1 *", "  retention:\n    keepLast: 2\n", &store))
        .await;
    let names = ["keep2-202601010000", "keep2-202601020000", "keep2-202601030000", "keep2-202601040000"];
    for name in names {
        env.child_of(&policy, name, &destination("s3", &store, "s3-keys")).await;
        // One at a time, so that each one's completion time orders them.
        env.phase(name, BackupPhase::Succeeded).await;
    }
    let objects = |name: &str| store.keys(BUCKET).into_iter().filter(|k| k.contains(&format!("/{name}/"))).count();
    env.wait("retention to keep two", || async {
        let left: Vec<String> = env.children("keep2").await.iter().map(|c| c.name_any()).collect();
        (left.len() == 2).then_some(left)
    })
    .await;
    let mut left: Vec<String> = env.children("keep2").await.iter().map(|c| c.name_any()).collect();
    left.sort();
    assert_eq!(left, vec![names[2].to_string(), names[3].to_string()]);
    assert_eq!((objects(names[0]), objects(names[1])), (0, 0), "the pruned backups' stored copies are gone");
    assert_eq!((objects(names[2]), objects(names[3])), (2, 2), "the kept ones still have manifest and archive");
    // Each Event is recorded just after its backup is deleted, so the last one may still be on
    // its way when the count of backups drops to two: wait for it rather than race it. Repeats
    // of one reason on one object are folded into a series by the Events recorder.
    env.wait("two BackupPruned events", || async {
        let events = env.events("BackupPruned").await;
        let pruned: i32 = events.iter().map(|e| e.series.as_ref().map_or(1, |s| s.count)).sum();
        (pruned >= 2).then_some(())
    })
    .await;
    // The copies were deleted by a prune Job in the namespace, with the backups' own
    // credentials: the operator's Pod never talks to a store.
    let runs = runner.runs.lock().map(|r| r.clone()).unwrap_or_default();
    assert!(runs.iter().any(|(pod, code)| pod.starts_with("keep2-prune-") && *code == 0), "{runs:?}");
    let operator_log = std::fs::read_to_string(&env.operator.log).unwrap_or_default();
    assert!(!operator_log.contains(&store.endpoint()), "the operator itself reached the store");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane and the test tools: run `make test`"]
async fn a_schedule_whose_newest_backup_failed_is_degraded_until_one_succeeds() {
    let env = Env::new("backup-failing").await;
    let store = S3Server::start(&[BUCKET]);
    env.secrets().await;
    let _billing = env.cluster("billing").await;
    let _runner = JobRunner::start(env.client.clone(), &env.ns);
    let policy = env.apply_yaml::<MongoBackup>(&schedule("nightly", "billing", "0 0 1 1 *", "", &store)).await;
    env.phase("nightly", BackupPhase::Scheduled).await;
    let condition = |b: &MongoBackup, t: &str| {
        b.status.as_ref()?.conditions.iter().find(|c| c.type_ == t).map(|c| (c.status.clone(), c.reason.clone()))
    };

    env.child_of(&policy, "nightly-202601010000", &destination("s3", &store, "s3-keys")).await;
    env.phase("nightly-202601010000", BackupPhase::Succeeded).await;
    // The newer one is denied by the store, for real.
    env.child_of(&policy, "nightly-202601020000", &destination("s3", &store, "s3-wrong-keys")).await;
    env.phase("nightly-202601020000", BackupPhase::Failed).await;
    let failing = env
        .wait("the schedule to report its failing backup", || async {
            env.backup("nightly").await.filter(|p| condition(p, "Ready").is_some_and(|(s, _)| s == "False"))
        })
        .await;
    assert_eq!(condition(&failing, "Ready"), Some(("False".into(), "LastBackupFailed".into())));
    assert_eq!(condition(&failing, "Degraded"), Some(("True".into(), "LastBackupFailed".into())));
    assert_eq!(condition(&failing, "Stalled"), Some(("True".into(), "LastBackupFailed".into())));
    let status = failing.status.clone().expect("status");
    assert_eq!(status.phase, Some(BackupPhase::Scheduled), "it still takes the next backups");
    assert_eq!(status.last_successful_backup.as_deref(), Some("nightly-202601010000"));
    let message =
        failing.status.iter().flat_map(|s| &s.conditions).find(|c| c.type_ == "Ready").map(|c| c.message.clone());
    let message = message.unwrap_or_default();
    assert!(message.contains("nightly-202601020000") && message.contains("destination s3"), "{message}");
    assert!(message.contains("the newest restorable backup is nightly-202601010000"), "{message}");
    assert_eq!(env.recorded("LastBackupFailed", 1).await.len(), 1);

    // A later success clears it.
    env.child_of(&policy, "nightly-202601030000", &destination("s3", &store, "s3-keys")).await;
    env.phase("nightly-202601030000", BackupPhase::Succeeded).await;
    let healthy = env
        .wait("the schedule to be Ready again", || async {
            env.backup("nightly").await.filter(|p| condition(p, "Ready").is_some_and(|(s, _)| s == "True"))
        })
        .await;
    assert_eq!(condition(&healthy, "Degraded"), Some(("False".into(), "AsExpected".into())));
    assert_eq!(condition(&healthy, "Stalled").map(|(s, _)| s), Some("False".into()));
    env.finish().await;
}

/// The cluster's `__system` login at its primary, from its internal Secret's keyFile.
async fn system_at_primary(env: &Env, held: &Holding, cluster: &str) -> mongo_operator::mongo::Target {
    let secret = env.api::<Secret>().get(&format!("{cluster}-internal")).await.expect("internal Secret");
    let key = String::from_utf8(secret.data.expect("data")["keyfile"].0.clone()).expect("text");
    let primary = held.sim.primary().expect("a primary");
    held.sim.target(&primary, Some(mongo_operator::mongo::Credentials::from_key_file(&key))).await
}

/// Creates a user on `orders` behind the operator's back, as a production DBA would.
async fn orders_user(env: &Env, orders: &Holding, user: &str, password: &str) {
    use mongo_operator::mongo::{MongoAdmin, Role, UserRequest};
    let admin = mongo_operator::mongo::DriverAdmin::new(mongo_operator::mongo::Timeouts::default());
    let request = UserRequest {
        db: "admin".into(),
        name: user.into(),
        password: Some(password.into()),
        roles: Some(vec![Role { role: "readWriteAnyDatabase".into(), db: "admin".into() }]),
    };
    admin.create_user(&system_at_primary(env, orders, "orders").await, &request).await.expect("createUser");
}

/// Every user of a cluster, as "db.name", sorted.
async fn users_of(env: &Env, held: &Holding, cluster: &str) -> Vec<String> {
    use mongo_operator::mongo::MongoAdmin;
    let admin = mongo_operator::mongo::DriverAdmin::new(mongo_operator::mongo::Timeouts::default());
    let users = admin.all_users(&system_at_primary(env, held, cluster).await).await.expect("usersInfo");
    let mut names: Vec<String> = users.into_iter().map(|u| format!("{}.{}", u.db, u.user)).collect();
    names.sort();
    names
}

/// Whether `user` logs in at the cluster's primary with `password`.
async fn login(held: &Holding, user: &str, password: &str) -> bool {
    use mongo_operator::mongo::MongoAdmin;
    let Some(primary) = held.sim.primary() else { return false };
    let target =
        held.sim.target(&primary, Some(mongo_operator::mongo::Credentials::scram(user, "admin", password))).await;
    let admin = mongo_operator::mongo::DriverAdmin::new(mongo_operator::mongo::Timeouts::default());
    !matches!(admin.users(&target, "admin").await, Err(mongo_operator::mongo::AdminError::AuthenticationFailed(_)))
}

fn clone_of(name: &str, from_backup: &str) -> String {
    format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\nmetadata:\n  name: {name}\nspec:\n  version: \"8.0.4\"\n  members: 3\n  imagePullSecrets: [{{name: regcred}}]\n{STORES_ON_LOOPBACK}  users:\n    - name: app\n      db: admin\n      roles: [{{name: readWrite, db: iot}}]\n  bootstrap:\n    fromBackup:\n{from_backup}"
    )
}

async fn readings(ferret: &Ferret) -> Vec<mongodb::bson::Document> {
    use futures::TryStreamExt;
    let client = ferret.client().await;
    let collection = client.database("iot").collection::<mongodb::bson::Document>("readings");
    let cursor = collection.find(mongodb::bson::doc! {}).sort(mongodb::bson::doc! { "_id": 1 }).await.expect("find");
    cursor.try_collect().await.expect("read")
}

impl Env {
    async fn restore_status(&self, cluster: &str) -> Option<mongo_operator::api::RestoreStatus> {
        self.api::<MongoCluster>().get(cluster).await.ok()?.status?.restore
    }

    async fn ready_condition(&self, cluster: &str) -> Option<(String, String)> {
        let c = self.api::<MongoCluster>().get(cluster).await.ok()?;
        c.status?.conditions.into_iter().find(|c| c.type_ == "Ready").map(|c| (c.status, c.reason))
    }

    async fn wait_restore(&self, cluster: &str, phase: mongo_operator::api::RestorePhase) {
        self.wait(&format!("the restore of {cluster} {phase:?}"), || async {
            self.restore_status(cluster).await.filter(|s| s.phase == phase).map(|_| ())
        })
        .await;
    }
}

#[tokio::test]
#[ignore = "needs the local control plane and the test tools: run `make test`"]
async fn clusters_created_from_a_backup_restore_it_before_they_are_ready() {
    use mongo_operator::api::RestorePhase;
    let env = Env::new("backup-clone").await;
    let (store, first_store) = (S3Server::start(&[BUCKET]), S3Server::start(&[BUCKET]));
    env.secrets().await;
    let orders = env.cluster("orders").await;
    seed(&orders.ferret).await;
    // Production's users: a DBA of its own, and an `app` user whose password the clone must not
    // inherit.
    for (user, password) in [("prod-dba", "production's DBA password"), ("app", "production's app password")] {
        orders_user(&env, &orders, user, password).await;
    }
    let runner = JobRunner::start(env.client.clone(), &env.ns);
    let encrypted = "  encryption:\n    keySecretRef:\n      name: backup-key\n      key: key\n";
    // Two copies; the one listed first will be found damaged.
    let both = format!("{}{}", destination("scaleway", &first_store, "s3-keys"), destination("ovh", &store, "s3-keys"));
    env.apply_yaml::<MongoBackup>(&one_off("nightly", "orders", &both, encrypted)).await;
    let backup = env.phase("nightly", BackupPhase::Succeeded).await;
    let backup_status = backup.status.expect("status");
    let copy = backup_status.copies.iter().find(|c| c.destination == "ovh").expect("the ovh copy");
    let path = copy.path.clone().expect("the copy's key is recorded");
    assert_eq!(path, "prod/orders/nightly/manifest.json");
    let damaged = first_store.object_file(BUCKET, "prod/orders/nightly/archive.mongodump.zst.age");
    let mut bytes = std::fs::read(&damaged).expect("the first copy's archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&damaged, bytes).expect("damage the first copy");
    let original = readings(&orders.ferret).await;
    assert_eq!(original.len(), 500);

    // By name. The restore Pod is held: the cluster waits on it, not Ready, and without its
    // application user, so nothing can write into a half-restored database.
    runner.hold();
    let resources = "      resources:\n        requests: {cpu: '1', memory: 512Mi}\n        limits: {memory: 3Gi}\n";
    env.apply_yaml::<MongoCluster>(&clone_of("staging", &format!("      backupName: nightly\n{resources}"))).await;
    let staging = env.holding("staging").await;
    env.wait_restore("staging", RestorePhase::Running).await;
    assert_eq!(env.ready_condition("staging").await, Some(("False".into(), "Restoring".into())));
    let secrets: Api<Secret> = env.api();
    assert!(secrets.get_opt("staging-admin-app").await.expect("get").is_none(), "no user before the data");
    let jobs: Api<Job> = env.api();
    let job = jobs.get("staging-restore").await.expect("the restore Job");
    let owner = job.metadata.owner_references.unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("MongoCluster"), "owned by the cluster");
    let pull = job.spec.clone().and_then(|s| s.template.spec?.image_pull_secrets).unwrap_or_default();
    assert_eq!(pull.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["regcred"], "the cluster's pull secret");
    let limits = job.spec.as_ref().and_then(|s| s.template.spec.as_ref()?.containers[0].resources.clone()?.limits);
    assert_eq!(
        limits.and_then(|l| l.get("memory").cloned()).map(|q| q.0).as_deref(),
        Some("3Gi"),
        "fromBackup.resources"
    );
    runner.release();
    env.wait("staging Ready", || async {
        (env.ready_condition("staging").await == Some(("True".into(), "Ready".into()))).then_some(())
    })
    .await;
    let restored = env.restore_status("staging").await.expect("restore status");
    assert_eq!(restored.phase, RestorePhase::Succeeded);
    assert_eq!(restored.checksum, backup_status.checksum, "the archive verified is the one backed up");
    assert_eq!(restored.source.as_deref(), Some("MongoBackup nightly"));
    let message = restored.message.clone().unwrap_or_default();
    assert!(message.contains("from the copy in ovh"), "the damaged first copy was passed over: {message}");
    assert!(message.contains("dropped the 1 users the backup brought: prod-dba@admin"), "{message}");
    assert_eq!(readings(&staging.ferret).await, original, "every document restored");
    // The clone has its own users only: the operator's (its own, the backup Jobs' and the
    // metrics exporter's), and `app` with the clone's password.
    let users = users_of(&env, &staging, "staging").await;
    let own =
        ["admin.app", "admin.mongo-operator-admin", "admin.mongo-operator-backup", "admin.mongo-operator-monitor"];
    assert_eq!(users, own, "{users:?}");
    assert_eq!(env.recorded("SourceUsersDropped", 1).await.len(), 1);
    let internal = secrets.get("staging-internal").await.expect("internal Secret");
    assert_eq!(
        internal.annotations().get("mongo.operator.rs/restored-from").map(String::as_str),
        Some("MongoBackup nightly"),
        "the success outlives the cluster's status"
    );
    // The status is the recorded one, so a reconcile from a stale cache reports the same.
    let record = internal.annotations().get("mongo.operator.rs/restore-result").expect("the recorded result");
    let record: mongo_operator::api::RestoreStatus = serde_json::from_str(record).expect("a RestoreStatus");
    assert_eq!(
        (record.message.as_deref(), record.checksum.as_deref()),
        (Some(message.as_str()), restored.checksum.as_deref())
    );
    env.wait("staging's application user", || async { secrets.get_opt("staging-admin-app").await.ok().flatten() })
        .await;
    env.wait("the app user with the clone's own password", || async {
        let password =
            String::from_utf8(secrets.get("staging-admin-app").await.ok()?.data?.get("password")?.0.clone()).ok()?;
        login(&staging, "app", &password).await.then_some(())
    })
    .await;
    assert!(
        !login(&staging, "app", "production's app password").await,
        "production's password does not open the clone"
    );
    assert_eq!(env.recorded("RestoreSucceeded", 1).await.len(), 1);

    // A reconcile that starts from a copy of the cluster older than the success's status write
    // (the Secret's change queues one at once) reports the same success, and no second one.
    let mut stale = env.api::<MongoCluster>().get("staging").await.expect("staging");
    if let Some(restore) = stale.status.as_mut().and_then(|s| s.restore.as_mut()) {
        restore.phase = RestorePhase::Running;
        restore.message = Some("Job staging-restore is restoring MongoBackup nightly".into());
    }
    mongo_operator::controller::cluster::reconcile(
        std::sync::Arc::new(stale),
        std::sync::Arc::new(support::operator::in_process_context(&env.client, &env.ns)),
    )
    .await
    .expect("a reconcile from the stale copy");
    assert_eq!(env.restore_status("staging").await, Some(restored.clone()), "the success as it was reported");
    assert_eq!(env.events("RestoreSucceeded").await.len(), 1);

    // By location, with the MongoBackup gone and the key given next to the location.
    env.api::<MongoBackup>().delete("nightly", &Default::default()).await.expect("delete the MongoBackup");
    let endpoint = store.endpoint();
    let location = |key: &str| {
        format!(
            "      location:\n        path: {path}\n        destination:\n          name: ovh\n          s3:\n            bucket: {BUCKET}\n            prefix: prod\n            endpoint: {endpoint}\n            forcePathStyle: true\n            credentialsSecretRef:\n              name: s3-keys\n      encryptionKeySecretRef:\n        name: {key}\n        key: key\n"
        )
    };
    env.apply_yaml::<MongoCluster>(&clone_of("archive", &location("backup-key"))).await;
    let archive = env.holding("archive").await;
    env.wait_restore("archive", RestorePhase::Succeeded).await;
    assert_eq!(readings(&archive.ferret).await, original, "restored by location");
    assert_eq!(env.restore_status("archive").await.and_then(|s| s.source), Some(format!("ovh:{path}")));

    // A wrong key: refused before anything is applied, the cluster held and Degraded.
    env.apply_yaml::<Secret>(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: wrong-key\nstringData:\n  key: not the passphrase\n",
    )
    .await;
    env.apply_yaml::<MongoCluster>(&clone_of("wrong", &location("wrong-key"))).await;
    let wrong_held = env.holding("wrong").await;
    env.wait_restore("wrong", RestorePhase::Failed).await;
    let failed = env.restore_status("wrong").await.expect("status");
    assert!(failed.message.as_deref().is_some_and(|m| m.contains("delete Job wrong-restore")), "{failed:?}");
    assert_eq!(env.ready_condition("wrong").await, Some(("False".into(), "RestoreFailed".into())));
    let wrong = env.api::<MongoCluster>().get("wrong").await.expect("cluster");
    assert_eq!(wrong.status.and_then(|s| s.phase), Some(mongo_operator::api::ClusterPhase::Degraded));
    assert!(readings(&wrong_held.ferret).await.is_empty(), "nothing applied with a wrong key");
    assert!(secrets.get_opt("wrong-admin-app").await.expect("get").is_none());
    env.finish().await;
}

/// The backup's verification, once it has finished.
async fn verification_of(env: &Env, name: &str) -> mongo_operator::api::VerificationStatus {
    env.wait(&format!("{name}'s verification to finish"), || async {
        let v = env.backup(name).await?.status?.verification?;
        matches!(v.phase, VerificationPhase::Passed | VerificationPhase::Failed).then_some(v)
    })
    .await
}

fn verified_condition(backup: &MongoBackup) -> Option<(String, String)> {
    let c = backup.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Verified")?;
    Some((c.status.clone(), c.reason.clone()))
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server, FerretDB, s3s-fs and mongo-tools: run `make test`"]
async fn a_backup_asking_for_verification_is_restored_copy_by_copy_into_a_throwaway_and_judged() {
    let env = Env::new("backup-verify").await;
    let (a, b) = (S3Server::start(&[BUCKET]), S3Server::start(&[BUCKET]));
    env.secrets().await;
    let orders = env.cluster("orders").await;
    seed(&orders.ferret).await;
    let runner = JobRunner::start(env.client.clone(), &env.ns);
    let both = format!("{}{}", destination("ovh", &a, "s3-keys"), destination("scaleway", &b, "s3-keys"));
    let verified = "  encryption:\n    keySecretRef:\n      name: backup-key\n      key: key\n  verification: {}\n";

    // A good backup: both copies restore into the Pod's throwaway mongod and match.
    env.apply_yaml::<MongoBackup>(&one_off("checked", "orders", &both, verified)).await;
    let v = verification_of(&env, "checked").await;
    assert_eq!(v.phase, VerificationPhase::Passed, "{v:#?}");
    assert_eq!(v.copies.iter().map(|c| c.destination.as_str()).collect::<Vec<_>>(), ["ovh", "scaleway"]);
    for copy in &v.copies {
        assert!(copy.passed && copy.mismatches.is_empty(), "{copy:#?}");
        assert!(copy.documents_expected >= 500 && copy.documents_restored == copy.documents_expected, "{copy:#?}");
        assert!(copy.restore_seconds > 0.0 && copy.throughput_bytes_per_second > 0, "{copy:#?}");
    }
    let checked = env.backup("checked").await.expect("backup");
    assert_eq!(checked.status.as_ref().and_then(|s| s.phase), Some(BackupPhase::Succeeded));
    assert_eq!(verified_condition(&checked), Some(("True".into(), "BackupVerified".into())));
    assert_eq!(env.recorded("BackupVerified", 1).await.len(), 1);

    // The Job: the throwaway mongod of the cluster's image as a native sidecar, on the Pod's
    // loopback; no retry, a deadline; the stores' keys and the encryption key, and no
    // MongoDB password (the throwaway has no access control, and the cluster is not reached).
    let jobs: Api<Job> = env.api();
    let job = jobs.get("checked-verify").await.expect("the verification Job");
    let spec = job.spec.clone().expect("spec");
    assert_eq!((spec.backoff_limit, spec.active_deadline_seconds), (Some(0), Some(3600)));
    let pod = spec.template.spec.expect("pod");
    let sidecar = pod.init_containers.iter().flatten().find(|c| c.name == "mongod").expect("the throwaway");
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert_eq!(sidecar.image.as_deref(), Some("mongo:8.0.4"));
    let command = sidecar.command.clone().unwrap_or_default().join(" ");
    assert!(command.contains("--bind_ip 127.0.0.1") && command.contains("--replSet verify"), "{command}");
    let projected: Vec<String> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.secret.as_ref())
        .flat_map(|s| s.items.iter().flatten().map(|i| i.path.clone()))
        .collect();
    assert!(!projected.iter().any(|p| p == mongo_operator::backup::files::MONGODB_PASSWORD), "{projected:?}");
    assert!(projected.iter().any(|p| p == mongo_operator::backup::files::ENCRYPTION_KEY), "{projected:?}");

    // A copy damaged in its store after the backup: that copy fails, naming why; the backup
    // stays Succeeded, and nothing is deleted.
    // Only its verification Pod waits: the backup Pod must run to store what is damaged.
    runner.hold_component("verify");
    env.apply_yaml::<MongoBackup>(&one_off("damaged", "orders", &both, verified)).await;
    env.phase("damaged", BackupPhase::Succeeded).await;
    let archive = b.object_file(BUCKET, "prod/orders/damaged/archive.mongodump.zst.age");
    let mut bytes = std::fs::read(&archive).expect("the stored archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&archive, bytes).expect("damage it");
    runner.release();
    let v = verification_of(&env, "damaged").await;
    assert_eq!(v.phase, VerificationPhase::Failed, "{v:#?}");
    assert!(v.copies[0].passed, "{v:#?}");
    let bad = &v.copies[1];
    assert!(!bad.passed && bad.mismatches[0].check == "restore", "{bad:#?}");
    assert!(v.message.as_deref().is_some_and(|m| m.contains("copy scaleway")), "{v:#?}");
    let damaged = env.backup("damaged").await.expect("backup");
    assert_eq!(damaged.status.as_ref().and_then(|s| s.phase), Some(BackupPhase::Succeeded));
    assert_eq!(verified_condition(&damaged), Some(("False".into(), "VerificationFailed".into())));
    assert_eq!(env.recorded("VerificationFailed", 1).await.len(), 1);
    assert!(b.keys(BUCKET).contains(&"prod/orders/damaged/manifest.json".to_string()), "kept");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server, FerretDB, s3s-fs and mongo-tools: run `make test`"]
async fn a_verification_cron_verifies_the_newest_unverified_backup_at_each_of_its_times() {
    use mongo_operator::controller::backup::verification::VERIFY_REQUESTED;

    let env = Env::new("backup-verify-cron").await;
    let store = S3Server::start(&[BUCKET]);
    env.secrets().await;
    let orders = env.cluster("orders").await;
    seed(&orders.ferret).await;
    let _runner = JobRunner::start(env.client.clone(), &env.ns);
    // Backups once a year (two are made by hand below, while the schedule is suspended),
    // verification every minute.
    let minutely = "  suspend: true\n  verification:\n    cron: \"* * * * *\"\n    deadlineSeconds: 600\n";
    env.apply_yaml::<MongoBackup>(&schedule("nightly", "orders", "0 0 1 1 *", minutely, &store)).await;
    let policy = env.phase("nightly", BackupPhase::Suspended).await;
    assert!(policy.status.as_ref().and_then(|s| s.next_verification_time.clone()).is_none(), "suspended");
    let destinations = destination("s3", &store, "s3-keys");
    for name in ["nightly-older", "nightly-newer"] {
        env.child_of(&policy, name, &destinations).await;
        env.phase(name, BackupPhase::Succeeded).await;
    }
    assert!(env.backup("nightly-newer").await.and_then(|b| b.status?.verification).is_none(), "not verified as taken");
    env.api::<MongoBackup>()
        .patch("nightly", &PatchParams::default(), &Patch::Merge(&serde_json::json!({"spec": {"suspend": false}})))
        .await
        .expect("resume");

    // At its next time, the newest backup is verified, and only that one.
    let v = verification_of(&env, "nightly-newer").await;
    assert_eq!(v.phase, VerificationPhase::Passed, "{v:#?}");
    assert_eq!(v.copies[0].documents_restored, v.copies[0].documents_expected);
    let newer = env.backup("nightly-newer").await.expect("backup");
    let chosen_at = newer.annotations().get(VERIFY_REQUESTED).cloned().expect("marked");
    assert!(chosen_at.ends_with(":00Z"), "a minute of the cron: {chosen_at}");
    assert_eq!(verified_condition(&newer), Some(("True".into(), "BackupVerified".into())));
    let status = env.backup("nightly").await.and_then(|p| p.status).expect("status");
    let next = status.next_verification_time.expect("next verification").0;
    assert!(next.as_second() % 60 == 0 && next > k8s_openapi::jiff::Timestamp::now(), "{next}");

    // At a later time, the older one, which was not verified yet; then nothing is left.
    assert_eq!(verification_of(&env, "nightly-older").await.phase, VerificationPhase::Passed);
    env.wait("a time with nothing left to verify", || async {
        let skipped = env.events("VerificationSkipped").await;
        skipped.iter().any(|e| e.note.as_deref().is_some_and(|n| n.contains("nothing to verify"))).then_some(())
    })
    .await;
    // The recorder makes one Event of repeats (same reason on the same object), counted in its series.
    let scheduled: i32 =
        env.events("VerificationScheduled").await.iter().map(|e| e.series.as_ref().map_or(1, |s| s.count)).sum();
    assert_eq!(scheduled, 2);
    let status = env.backup("nightly").await.and_then(|p| p.status).expect("status");
    assert_eq!(status.last_verified_backup.as_deref(), Some("nightly-older"), "the one verified last");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane and the test tools: run `make test`"]
async fn a_schedule_with_pitr_runs_an_oplog_archiver_after_its_base_backup_until_pitr_is_removed() {
    use k8s_openapi::api::apps::v1::Deployment;
    use mongo_operator::api::PitrPhase;

    let env = Env::new("backup-pitr").await;
    env.secrets().await;
    let store = S3Server::start(&[BUCKET]);
    env.apply_yaml::<MongoCluster>(&format!(
        "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoCluster\nmetadata:\n  name: orders\nspec:\n  version: \"8.0.4\"\n  members: 3\n{STORES_ON_LOOPBACK}"
    ))
    .await;
    let ferret = Ferret::start();
    let _sim = SimMembers::holding_data_in_order(&env.client, &env.ns, "orders", &ferret.address).await;
    env.wait("a secondary to dump from", || async {
        let status = env.api::<MongoCluster>().get("orders").await.ok()?.status?;
        mongo_operator::controller::backup::source::dump_member(&status).filter(|d| d.state == "SECONDARY")
    })
    .await;
    // One document per request: FerretDB logs a multi-document insert's entries out of
    // timestamp order, which mongod never does (docs/testing.md).
    let client = ferret.client().await;
    let readings = client.database("iot").collection::<mongodb::bson::Document>("readings");
    for i in 0..20 {
        readings.insert_one(mongodb::bson::doc! { "_id": i, "v": i }).await.expect("write");
    }
    let _runner = JobRunner::start(env.client.clone(), &env.ns);
    let encrypted = "  encryption:\n    keySecretRef: {name: backup-key, key: key}\n";
    let destinations = destination("s3", &store, "s3-keys");

    // Admission: only a schedule archives, and only with encryption.
    let refused = env
        .api::<MongoBackup>()
        .create(
            &PostParams::default(),
            &serde_yaml::from_str(&one_off("once", "orders", &destinations, &format!("{encrypted}  pitr: {{}}\n")))
                .expect("yaml"),
        )
        .await;
    assert!(refused.is_err_and(|e| e.to_string().contains("pitr applies only to a schedule")));
    let refused = env
        .api::<MongoBackup>()
        .create(
            &PostParams::default(),
            &serde_yaml::from_str(&schedule("plain", "orders", "0 3 1 1 *", "  pitr: {}\n", &store)).expect("yaml"),
        )
        .await;
    assert!(refused.is_err_and(|e| e.to_string().contains("pitr needs encryption.keySecretRef")));

    // The base backup, then a schedule that archives the oplog after it.
    env.apply_yaml::<MongoBackup>(&one_off("orders-base", "orders", &destinations, encrypted)).await;
    env.wait("the base backup", || async {
        let b = env.api::<MongoBackup>().get("orders-base").await.ok()?;
        (b.status?.phase? == BackupPhase::Succeeded).then_some(())
    })
    .await;
    env.apply_yaml::<MongoBackup>(&schedule(
        "nightly",
        "orders",
        "0 3 1 1 *",
        &format!("{encrypted}  pitr: {{spanMinutes: 1}}\n"),
        &store,
    ))
    .await;
    let deployment = env
        .wait("the archiver's Deployment", || async {
            env.api::<Deployment>().get_opt("orders-oplog-archiver").await.ok()?
        })
        .await;
    let spec = deployment.spec.as_ref().expect("spec");
    assert_eq!((spec.replicas, spec.strategy.as_ref().and_then(|s| s.type_.as_deref())), (Some(1), Some("Recreate")));
    let container = &spec.template.spec.as_ref().expect("pod").containers[0];
    let plan = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "MONGO_OPERATOR_PLAN")
        .and_then(|e| e.value.clone())
        .expect("plan");
    let plan: mongo_operator::pitr::archiver::ArchivePlan = serde_json::from_str(&plan).expect("an archiver plan");
    assert_eq!((plan.members.len(), plan.span_seconds, plan.encrypted), (3, 60, true));
    env.wait("status.pitr Running", || async {
        let pitr = env.api::<MongoBackup>().get("nightly").await.ok()?.status?.pitr?;
        (pitr.phase == PitrPhase::Running).then_some(())
    })
    .await;

    // The archiver the Pod runs (with the plan and the projected secrets the operator gave
    // it) reads the stores and starts after the base backup's oplog end. Its archiving is
    // shown by tests/pitr_archive.rs: FerretDB's tailable cursor here returns entries out of
    // timestamp order, which the archiver refuses (docs/testing.md).
    let base_manifest: mongo_operator::backup::plan::Manifest = serde_json::from_slice(
        &std::fs::read(store.object_file(BUCKET, "prod/orders/orders-base/manifest.json")).expect("read"),
    )
    .expect("the base manifest");
    let end = base_manifest.contents.and_then(|c| c.oplog_last).expect("the base's oplog end");
    let pods = env.api::<k8s_openapi::api::core::v1::Pod>();
    let started = format!("starting after the oplog end of base backup orders-base ({end})");
    env.wait("the archiver to start after the base backup", || async {
        let selector = "app.kubernetes.io/component=oplog-archiver";
        let pod = pods.list(&ListParams::default().labels(selector)).await.ok()?.items.into_iter().next()?;
        let log = std::env::temp_dir().join(format!("mongo-operator-pod-{}.log", pod.name_any()));
        std::fs::read_to_string(log).ok()?.contains(&started).then_some(())
    })
    .await;

    // The operator reads the archiver's report from its status port on the Pod's IP: the
    // window is empty (nothing archived after the base yet), and the message is the archiver's.
    env.wait("status.pitr showing the archiver's report", || async {
        let pitr = env.api::<MongoBackup>().get("nightly").await.ok()?.status?.pitr?;
        let message = pitr.message.clone().unwrap_or_default();
        (message.contains("after the oplog end of base backup orders-base") || message.contains("reading the oplog of"))
            .then_some(pitr)
    })
    .await;

    // Writes after the base: the archiver cuts them into a chunk within a span (a minute
    // here), and the operator, reading the report again a span after the last read, shows the
    // window a restore accepts, and the metric the alert reads.
    for i in 100..105 {
        readings.insert_one(mongodb::bson::doc! { "_id": i, "v": i }).await.expect("write");
    }
    let pitr = env
        .wait_long("status.pitr with a restorable range", Duration::from_secs(200), || async {
            let pitr = env.api::<MongoBackup>().get("nightly").await.ok()?.status?.pitr?;
            pitr.latest_restorable_time.is_some().then_some(pitr)
        })
        .await;
    assert_eq!(pitr.restorable_ranges.len(), 1, "{pitr:?}");
    let earliest = pitr.earliest_restorable_time.as_ref().expect("earliest").0.as_second();
    assert_eq!(earliest, i64::from(end.ts.time) + 1, "the second after the base's oplog end");
    assert!(pitr.latest_restorable_time.as_ref().is_some_and(|l| l.0.as_second() >= earliest), "{pitr:?}");
    assert!(pitr.gaps.is_empty() && pitr.lag_seconds.is_some() && pitr.last_chunk_time.is_some(), "{pitr:?}");
    // The oplog here holds the test's minute or two, under twice the 60 s span: warned once.
    assert!(pitr.oplog_window_seconds.is_some_and(|w| w < 120), "{pitr:?}");
    assert!(pitr.message.as_deref().is_some_and(|m| m.contains("under twice the span")), "{pitr:?}");
    let short = env.recorded("OplogWindowShort", 1).await;
    assert_eq!(short.len(), 1, "{short:?}");
    let metrics = env.operator.metrics().await;
    let series = format!(
        "mongo_operator_pitr_latest_restorable_timestamp_seconds{{namespace=\"{}\",cluster=\"orders\",schedule=\"nightly\"}}",
        env.ns
    );
    assert!(metrics.contains(&series), "{series} not in\n{metrics}");

    // pitr removed: the archiver goes.
    env.api::<MongoBackup>()
        .patch("nightly", &PatchParams::default(), &Patch::Merge(serde_json::json!({ "spec": { "pitr": null } })))
        .await
        .expect("remove pitr");
    env.wait("the archiver removed", || async {
        env.api::<Deployment>().get_opt("orders-oplog-archiver").await.ok()?.is_none().then_some(())
    })
    .await;
    env.wait("status.pitr cleared", || async {
        env.api::<MongoBackup>().get("nightly").await.ok()?.status?.pitr.is_none().then_some(())
    })
    .await;
    env.finish().await;
}

/// Every document of `shop.orders` in a FerretDB, by `_id`.
async fn orders_in(ferret: &Ferret) -> Vec<mongodb::bson::Document> {
    use futures::TryStreamExt;
    let client = ferret.client().await;
    let orders = client.database("shop").collection::<mongodb::bson::Document>("orders");
    let cursor = orders.find(mongodb::bson::doc! {}).sort(mongodb::bson::doc! { "_id": 1 }).await.expect("find");
    cursor.try_collect().await.expect("documents")
}

#[tokio::test]
#[ignore = "needs the local control plane and the test tools: run `make test`"]
async fn a_cluster_restored_to_a_point_in_time_holds_every_write_before_it_and_none_after() {
    use mongo_operator::api::RestorePhase;
    use support::job_files::Secrets;
    use support::pitr;

    let env = Env::new("backup-pitr-restore").await;
    env.secrets().await;
    let store = S3Server::start(&[BUCKET]);
    // The source's base backup and archived oplog, made by the real `backup` and
    // `archive-oplog` binaries under the keys the schedule below names (prefix `prod`, cluster
    // `orders`): the same data path as the schedule's Jobs and archiver, outside the control
    // plane, where FerretDB's oplog stays in timestamp order (docs/testing.md).
    let set = pitr::source_set(None).await;
    pitr::write(&set, 0, 20).await;
    let (destinations, opened) = pitr::stores(&[("s3", &store, "prod")]);
    let files = Secrets::backup(&["s3"], Some(pitr::KEY));
    pitr::base_backup(&set, "orders-every-2h-202612050800", &destinations, &files.0, &opened[0]).await;
    let archiver = pitr::Archiver::start(&set, &destinations, &files.0, 1);
    pitr::write(&set, 100, 20).await;
    let now = chrono::Utc::now();
    let target = chrono::DateTime::from_timestamp(now.timestamp() + 1, 0).expect("time");
    tokio::time::sleep((target - now).to_std().unwrap_or_default() + Duration::from_millis(300)).await;
    let at_target = pitr::orders(&set).await;
    pitr::write(&set, 200, 20).await;
    pitr::wait_archived(&opened, pitr::newest_entry(&set).await, &archiver).await;
    let latest = pitr::orders(&set).await;
    assert_ne!(at_target, latest);

    env.apply_yaml::<Secret>(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pitr-key\nstringData:\n  key: \"{}\"\n",
        pitr::KEY
    ))
    .await;
    let encrypted = "  encryption:\n    keySecretRef: {name: pitr-key, key: key}\n  pitr: {spanMinutes: 10}\n";
    env.apply_yaml::<MongoBackup>(&schedule("orders-every-2h", "orders", "0 3 1 1 *", encrypted, &store)).await;

    // Admission: a point in time is a second (or `latest`).
    let fraction = clone_of("x", "      backupName: orders-every-2h\n      pointInTime: \"2026-12-05T10:15:00.5Z\"\n");
    let refused = env
        .api::<MongoCluster>()
        .create(&PostParams::default(), &serde_yaml::from_str(&fraction).expect("yaml"))
        .await
        .expect_err("a fraction of a second is refused")
        .to_string();
    assert!(refused.contains("pointInTime"), "{refused}");

    let runner = JobRunner::start(env.client.clone(), &env.ns);
    let from = |at: &str| format!("      backupName: orders-every-2h\n      pointInTime: \"{at}\"\n");
    env.apply_yaml::<MongoCluster>(&clone_of("before", &from(&target.to_rfc3339()))).await;
    let before = env.holding("before").await;
    env.apply_yaml::<MongoCluster>(&clone_of("newest", &from("latest"))).await;
    let newest = env.holding("newest").await;
    env.wait_restore("before", RestorePhase::Succeeded).await;
    let restored = env.restore_status("before").await.expect("status");
    let p = restored.point_in_time.clone().expect("status.restore.pointInTime");
    assert_eq!(
        (p.target.as_str(), p.resolved.0.as_second(), p.oplog_limit.clone(), p.base_backup.as_str()),
        (
            target.to_rfc3339().as_str(),
            target.timestamp(),
            format!("{}:0", target.timestamp()),
            "orders-every-2h-202612050800"
        )
    );
    assert!(p.entries_replayed > 20 && p.chunks >= 1, "{p:?}");
    assert_eq!(
        restored.source.as_deref(),
        Some(format!("MongoBackup orders-every-2h to {}", target.to_rfc3339()).as_str())
    );
    assert_eq!(orders_in(&before.ferret).await, at_target, "the writes before the second, none after");
    env.wait_restore("newest", RestorePhase::Succeeded).await;
    assert_eq!(orders_in(&newest.ferret).await, latest, "every archived write");

    // By location, as from another Kubernetes cluster where the schedule does not exist: the
    // source cluster's directory in the store, and the key.
    let elsewhere = format!(
        "      location:\n        path: prod/orders\n        destination:\n          name: s3\n          s3: {{bucket: {BUCKET}, prefix: prod, endpoint: \"{}\", forcePathStyle: true, credentialsSecretRef: {{name: s3-keys}}}}\n      encryptionKeySecretRef: {{name: pitr-key, key: key}}\n      pointInTime: latest\n",
        store.endpoint()
    );
    env.apply_yaml::<MongoCluster>(&clone_of("elsewhere", &elsewhere)).await;
    let by_location = env.holding("elsewhere").await;
    env.wait_restore("elsewhere", RestorePhase::Succeeded).await;
    let restored = env.restore_status("elsewhere").await.expect("status");
    assert_eq!(restored.source.as_deref(), Some("s3:prod/orders to latest"));
    assert_eq!(restored.point_in_time.map(|p| p.base_backup).as_deref(), Some("orders-every-2h-202612050800"));
    assert_eq!(orders_in(&by_location.ferret).await, latest, "every archived write, by location");

    // Before the first base: the restore fails with the ranges there are; nothing is written.
    env.apply_yaml::<MongoCluster>(&clone_of("early", &from("2020-01-01T00:00:00Z"))).await;
    let early = env.holding("early").await;
    env.wait_restore("early", RestorePhase::Failed).await;
    let failed = env.restore_status("early").await.and_then(|s| s.message).unwrap_or_default();
    assert!(failed.contains("outside every restorable range") && failed.contains(" to "), "{failed}");
    assert_eq!(env.ready_condition("early").await, Some(("False".into(), "RestoreFailed".into())));
    assert!(orders_in(&early.ferret).await.is_empty());
    drop(runner);
    drop(archiver);
    env.finish().await;
}
