//! Member roles (`spec.memberRoles`) on the local control plane: the real operator binary,
//! simulated members that check every reconfig against the server's rules (priority, hidden,
//! delay, tags, one vote change at a time) and leave hidden members out of `hello`.

mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::ResourceExt;
use mongo_operator::api::{MemberRole, MemberStatus, MongoBackup, MongoCluster};
use mongo_operator::controller::backup::trust::CREDENTIALS_LABEL;
use support::cluster_env::*;
use support::members::SimMembers;
use support::servers::{S3_ACCESS_KEY, S3_SECRET_KEY, S3Server};

const LOOPBACK_STORES: &str = "  networkIsolation:\n    objectStores:\n      cidrs: [127.0.0.0/8]\n      ports: []\n";

fn member<'a>(c: &'a MongoCluster, pod: &str) -> Option<&'a MemberStatus> {
    c.status.as_ref()?.members.iter().find(|m| m.name == pod)
}

/// Waits until the cluster is Ready and `check` holds for it.
async fn ready_when(env: &Env, what: &str, check: impl Fn(&MongoCluster) -> bool) -> MongoCluster {
    support::eventually(what, Duration::from_secs(240), || async {
        let c = env.api::<MongoCluster>().get("ledger").await.ok()?;
        (is_ready(&c) && check(&c)).then_some(c)
    })
    .await
}

/// The Pods the client Service selects, ready ones, as the EndpointSlice controller would
/// pick them. Not its EndpointSlices themselves: the Pods' loopback IPs here are addresses the
/// API server refuses in an endpoint (docs/testing.md).
async fn client_endpoints(env: &Env) -> Vec<String> {
    let service = env.api::<Service>().get("ledger").await.expect("the client Service");
    let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
    assert!(!selector.is_empty(), "the client Service selects its Pods");
    let mut pods: Vec<String> = env
        .pods("ledger")
        .await
        .into_iter()
        .filter(|p| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .map(|p| p.name_any())
        .collect();
    pods.sort();
    pods
}

fn label(pod: &Pod) -> Option<String> {
    pod.labels().get("mongo.operator.rs/serves-clients").cloned()
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn roles_are_applied_changed_in_safe_steps_and_hidden_members_serve_backups_not_clients() {
    let env = Env::new("roles").await;
    let roles = "  memberRoles:\n    - ordinals: [3]\n      role: Hidden\n      tags: {use: analytics}\n";
    env.create_cluster(&cluster_yaml("ledger", 4, &format!("{roles}{LOOPBACK_STORES}"))).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "ledger", None).await;
    // Four members that may vote: three do (an odd number), the hidden one is not among them
    // (electable members get the votes first), and it is hidden with priority 0.
    let c = ready_when(&env, "Ready with ledger-3 hidden", |c| {
        member(c, "ledger-3").is_some_and(|m| m.role == Some(MemberRole::Hidden) && m.state == "SECONDARY")
    })
    .await;
    let hidden = member(&c, "ledger-3").expect("ledger-3");
    assert_eq!(hidden.priority, Some(0.0));
    let voters = c.status.as_ref().map(|s| s.members.iter().filter(|m| m.voting).count());
    assert_eq!(voters, Some(3));
    // Clients are never sent to it: its Pod is labelled so, and the client Service does not
    // select it.
    for pod in env.pods("ledger").await {
        let expected = if pod.name_any() == "ledger-3" { "false" } else { "true" };
        assert_eq!(label(&pod).as_deref(), Some(expected), "{}", pod.name_any());
    }
    support::eventually("the client Service without ledger-3", Duration::from_secs(60), || async {
        (client_endpoints(&env).await == ["ledger-0", "ledger-1", "ledger-2"]).then_some(())
    })
    .await;

    // A backup dumps from the hidden member, though the others are caught up too.
    let store = S3Server::start(&["backups"]);
    support::create_typed::<Secret>(
        &env.client,
        &env.ns,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s3-keys\n  labels: {{{CREDENTIALS_LABEL}: \"true\"}}\nstringData:\n  AWS_ACCESS_KEY_ID: {S3_ACCESS_KEY}\n  AWS_SECRET_ACCESS_KEY: {S3_SECRET_KEY}\n"
        ),
    )
    .await;
    support::create_typed::<MongoBackup>(
        &env.client,
        &env.ns,
        &format!(
            "apiVersion: mongo.operator.rs/v1alpha1\nkind: MongoBackup\nmetadata:\n  name: analytics-copy\nspec:\n  clusterRef: {{name: ledger}}\n  unencrypted: true\n  destinations:\n  - name: ovh\n    s3:\n      bucket: backups\n      endpoint: {}\n      forcePathStyle: true\n      credentialsSecretRef: {{name: s3-keys}}\n",
            store.endpoint()
        ),
    )
    .await;
    let job = support::eventually("the backup's Job", Duration::from_secs(60), || async {
        env.api::<Job>().get_opt("analytics-copy-backup").await.ok()?
    })
    .await;
    let plan = job
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers[0].env.clone())
        .and_then(|env| env.into_iter().find(|e| e.name == "MONGO_OPERATOR_PLAN"))
        .and_then(|e| e.value)
        .expect("the backup's plan");
    let plan: mongo_operator::backup::plan::BackupPlan = serde_json::from_str(&plan).expect("plan");
    assert!(plan.source.uri.starts_with("mongodb://ledger-3.ledger-members."), "{}", plan.source.uri);

    // Roles change: the primary becomes a delayed member and ledger-3 an electable one with
    // priority 2. Every step is checked by the simulated members against the server's rules;
    // the primary steps down before it leaves elections.
    let primary = sim.primary().expect("a primary");
    let ordinal: i32 = primary.rsplit('-').next().and_then(|o| o.parse().ok()).expect("ordinal");
    let changed = if ordinal == 3 { 0 } else { ordinal };
    env.patch_spec(
        "ledger",
        serde_json::json!({ "memberRoles": [
            { "ordinals": [changed], "role": "Delayed", "delaySeconds": 3600 },
            { "ordinals": [3], "priority": 2 },
        ]}),
    )
    .await;
    let delayed = format!("ledger-{changed}");
    let c = ready_when(&env, "Ready with the new roles", |c| {
        member(c, &delayed).is_some_and(|m| m.role == Some(MemberRole::Delayed) && !m.voting)
            && member(c, "ledger-3").is_some_and(|m| m.role == Some(MemberRole::Electable) && m.priority == Some(2.0))
    })
    .await;
    assert_ne!(c.status.as_ref().and_then(|s| s.primary.clone()), Some(delayed.clone()));
    let voters = c.status.as_ref().map(|s| s.members.iter().filter(|m| m.voting).count());
    assert_eq!(voters, Some(3), "three members may vote, and do");
    if changed == ordinal {
        let stepped = env.recorded("PrimarySteppedDown", 1).await;
        assert!(
            stepped.iter().any(|e| e.note.as_deref().is_some_and(|n| n.contains("before its role takes it out"))),
            "{stepped:?}"
        );
    }
    assert!(!env.recorded("MemberRolesChanged", 1).await.is_empty());
    support::eventually(
        "the client Service with ledger-3, without the delayed member",
        Duration::from_secs(60),
        || {
            let delayed = delayed.clone();
            let env = &env;
            async move {
                let pods = client_endpoints(env).await;
                (pods.len() == 3 && pods.contains(&"ledger-3".to_string()) && !pods.contains(&delayed)).then_some(())
            }
        },
    )
    .await;
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn an_arbiter_joins_two_members_with_a_default_write_concern_and_leaves_when_turned_off() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use mongo_operator::mongo::{Credentials, DriverAdmin, MongoAdmin, Timeouts};

    let env = Env::new("arbiter").await;
    env.create_cluster(&cluster_yaml("ledger", 2, "  arbiter: {enabled: true}\n")).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "ledger", None).await;
    let c = ready_when(&env, "Ready with ledger-arbiter-0 the arbiter", |c| {
        member(c, "ledger-arbiter-0").is_some_and(|m| m.role == Some(MemberRole::Arbiter) && m.state == "ARBITER")
    })
    .await;
    let status = c.status.as_ref().expect("status");
    // Three votes: both data-bearing members (each electable) and the arbiter's.
    assert_eq!(status.members.iter().filter(|m| m.voting).count(), 3, "{:?}", status.members);
    assert!(["ledger-0", "ledger-1"].iter().all(|p| member(&c, p).is_some_and(|m| m.priority == Some(1.0))));
    assert_eq!(status.ready_members, 2, "data-bearing members only");
    // Its own StatefulSet, one Pod without a volume; the budget counts its vote (one of
    // three may be down).
    let sts = env.api::<StatefulSet>().get("ledger-arbiter").await.expect("the arbiter's StatefulSet");
    let sts_spec = sts.spec.expect("spec");
    assert_eq!(sts_spec.replicas, Some(1));
    assert!(sts_spec.volume_claim_templates.is_none());
    let pdb = env.api::<PodDisruptionBudget>().get("ledger").await.expect("the budget");
    assert_eq!(
        pdb.spec.and_then(|s| s.max_unavailable),
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    // The server's cluster-wide default write concern is the spec's (majority by default),
    // set by the operator (an arbiter changes the server's implicit one).
    let key_file = env.secret_text("ledger-internal", "keyfile").await.expect("the keyFile");
    let primary = sim.primary().expect("a primary");
    let target = sim.target(&primary, Some(Credentials::from_key_file(&key_file))).await;
    let admin = DriverAdmin::new(Timeouts::default());
    assert_eq!(admin.default_write_concern(&target).await.expect("getDefaultRWConcern").as_deref(), Some("majority"));
    assert!(!env.recorded("DefaultWriteConcernSet", 1).await.is_empty());
    // No client is sent to it.
    support::eventually("the client Service without the arbiter", Duration::from_secs(60), || async {
        (client_endpoints(&env).await == ["ledger-0", "ledger-1"]).then_some(())
    })
    .await;

    // Turned off: it leaves the set first, then its StatefulSet goes, and the two members
    // are back to one vote (an even two would tie).
    env.patch_spec("ledger", serde_json::json!({ "arbiter": { "enabled": false } })).await;
    let c = ready_when(&env, "Ready without the arbiter", |c| {
        member(c, "ledger-arbiter-0").is_none() && c.status.as_ref().is_some_and(|s| s.members.len() == 2)
    })
    .await;
    let voters = c.status.as_ref().map(|s| s.members.iter().filter(|m| m.voting).count());
    assert_eq!(voters, Some(1));
    support::eventually("the arbiter's StatefulSet gone", Duration::from_secs(60), || async {
        env.api::<StatefulSet>().get_opt("ledger-arbiter").await.ok()?.is_none().then_some(())
    })
    .await;
    let removed = env.recorded("MemberRemoved", 1).await;
    assert!(removed.iter().any(|e| e.note.as_deref().is_some_and(|n| n.contains("ledger-arbiter-0"))), "{removed:?}");
    env.finish().await;
}
