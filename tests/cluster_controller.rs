//! The MongoCluster controller end to end: the real operator binary on the local control plane,
//! simulated members on the kwok Pods' IPs, the real driver. Each test has its own namespace
//! and its own operator (`run --namespace`).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use mongo_operator::api::MongoCluster;
use support::cluster_env::*;
use support::members::SimMembers;
use support::operator::Operator;
use support::*;

/// Logs in as a user as an application would, with its connection Secret alone: the
/// connection string (which asks for TLS) and the Secret's `ca.crt` as the CA file, directly
/// at the primary by its DNS name.
async fn login(env: &Env, sim: &SimMembers, secret: &str) -> Result<(), mongodb::error::Error> {
    let standard = env.secret_text(secret, "connectionString.standard").await.expect("connection string");
    assert!(standard.contains("tls=true"), "{standard}");
    let ca = env.secret_text(secret, "ca.crt").await.expect("the CA in the connection Secret");
    let mut options = mongodb::options::ClientOptions::parse(&standard).await?;
    options.tls = Some(mongodb::options::Tls::Enabled(
        mongodb::options::TlsOptions::builder().ca_file_path(support::members::write_ca(secret, &ca)).build(),
    ));
    let primary = sim.primary().expect("a primary");
    let address = sim.target(&primary, None).await.address;
    options.hosts = vec![mongodb::options::ServerAddress::parse(&address)?];
    options.direct_connection = Some(true);
    options.repl_set_name = None;
    options.server_selection_timeout = Some(Duration::from_secs(3));
    let client = mongodb::Client::with_options(options)?;
    client.database("admin").run_command(mongodb::bson::doc! { "ping": 1 }).await.map(|_| ())
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn creates_a_replica_set_and_scales_it_3_5_3_1_3() {
    let env = Env::new("mgc-scale").await;
    let users = "  users:\n    - name: app\n      db: admin\n      roles: [{name: readWrite, db: orders}]\n";
    env.create_cluster(&cluster_yaml("shop", 3, users)).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "shop", None).await;

    let c = env.ready("shop").await;
    let status = c.status.clone().unwrap();
    assert_eq!(status.ready_members, 3);
    assert_eq!(status.members.iter().filter(|m| m.voting).count(), 3);
    assert!(status.primary.is_some());
    assert_eq!(status.version.as_deref(), Some("8.0.4"));
    assert_eq!(status.feature_compatibility_version.as_deref(), Some("8.0"));
    assert_eq!(status.phase, Some(mongo_operator::api::ClusterPhase::Ready));

    // Every owned object exists, with the cluster as owner.
    let uid = c.metadata.uid.clone().unwrap();
    let owned = |refs: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
        refs.unwrap_or_default().iter().any(|r| r.uid == uid)
    };
    let sts = env.api::<StatefulSet>().get("shop").await.unwrap();
    assert!(owned(sts.metadata.owner_references.clone()));
    assert_eq!(sts.spec.as_ref().unwrap().replicas, Some(3));
    assert!(owned(env.api::<Service>().get("shop-members").await.unwrap().metadata.owner_references));
    assert!(owned(env.api::<Service>().get("shop").await.unwrap().metadata.owner_references));
    assert!(owned(env.api::<ConfigMap>().get("shop-mongod-config").await.unwrap().metadata.owner_references));
    assert!(owned(env.api::<PodDisruptionBudget>().get("shop").await.unwrap().metadata.owner_references));
    // Retain (the default) keeps Secrets out of garbage collection.
    let internal = env.api::<Secret>().get("shop-internal").await.unwrap();
    assert!(!owned(internal.metadata.owner_references.clone()));
    let key_file = env.secret_text("shop-internal", "keyfile").await.unwrap();
    assert_eq!(key_file.len(), 128);

    // The user's connection Secret works with the real driver; a wrong password does not.
    for key in ["connectionString.standard", "connectionString.standardSrv", "username", "password"] {
        assert!(env.secret_text("shop-admin-app", key).await.is_some(), "connection Secret lacks {key}");
    }
    login(&env, &sim, "shop-admin-app").await.expect("log in with the connection Secret");
    assert_eq!(env.event_count("Initiated").await, 1, "initiated exactly once");
    assert_eq!(env.event_count("UserCreated").await, 1);

    for (members, voters) in [(5, 5), (3, 3), (1, 1), (3, 3)] {
        env.patch_spec("shop", serde_json::json!({ "members": members })).await;
        let c = env.ready("shop").await;
        let status = c.status.unwrap();
        assert_eq!(status.ready_members, members, "ready members after scaling to {members}");
        assert_eq!(status.members.len(), members as usize, "{:?}", status.members);
        assert_eq!(status.members.iter().filter(|m| m.voting).count(), voters);
        let replicas = env.api::<StatefulSet>().get("shop").await.unwrap().spec.unwrap().replicas;
        assert_eq!(replicas, Some(members));
        let standard = env.secret_text("shop-admin-app", "connectionString.standard").await.unwrap();
        assert_eq!(standard.matches(".svc.cluster.local:27017").count(), members as usize, "{standard}");
    }
    // Volumes of removed members were kept.
    let claims = env.api::<PersistentVolumeClaim>().list(&ListParams::default()).await.unwrap();
    let names: BTreeSet<String> = claims.items.iter().map(|c| c.name_any()).collect();
    for i in 0..5 {
        assert!(names.contains(&format!("data-shop-{i}")), "volume of shop-{i} kept: {names:?}");
    }
    // The primary was never removed without stepping down, and a scale-down to 1 needed a
    // step-down unless member 0 was already primary.
    // 3→5 and 1→3 add two members each; 5→3 and 3→1 remove two each.
    assert_eq!(env.event_count("MemberAdded").await, 4);
    assert_eq!(env.event_count("MemberRemoved").await, 4);
    login(&env, &sim, "shop-admin-app").await.expect("log in after scaling");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn rolls_out_one_member_at_a_time_primary_last_and_rotates_passwords() {
    let env = Env::new("mgc-roll").await;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app-password"},
        "stringData": {"pw": "first-password"},
    }))
    .unwrap();
    env.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();
    let users = "  users:\n    - name: app\n      db: admin\n      roles: [{name: readWrite, db: orders}]\n      passwordSecretRef: {name: app-password, key: pw}\n";
    env.create_cluster(&cluster_yaml("roll", 3, users)).await;
    let log_path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-commands.jsonl", env.ns));
    let log = mongo_replset_sim::CommandLog::create(&log_path).unwrap();
    let sim = SimMembers::follow(&env.client, &env.ns, "roll", Some(log)).await;
    env.ready("roll").await;
    assert_eq!(env.secret_text("roll-admin-app", "password").await.as_deref(), Some("first-password"));
    login(&env, &sim, "roll-admin-app").await.expect("first password");

    let before: Vec<(String, String)> =
        env.pods("roll").await.iter().map(|p| (p.name_any(), p.metadata.uid.clone().unwrap())).collect();
    let primary_before = sim.primary().unwrap();
    env.patch_spec(
        "roll",
        serde_json::json!({ "resources": { "requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "1Gi"} } }),
    )
    .await;
    let c = env.ready("roll").await;
    assert_eq!(c.status.unwrap().ready_members, 3);
    let after = env.pods("roll").await;
    for (name, uid) in &before {
        let p = after.iter().find(|p| &p.name_any() == name).unwrap();
        assert_ne!(p.metadata.uid.as_ref(), Some(uid), "{name} was restarted");
        assert_eq!(memory_limit(p), "1Gi");
    }
    // One at a time, and the old primary last, after stepping down.
    let restarts = env.recorded("MemberRestarting", 3).await;
    assert_eq!(restarts.len(), 3, "three restarts: {restarts:?}");
    let mut order: Vec<(String, String)> = restarts
        .iter()
        .map(|e| {
            (e.event_time.as_ref().map(|t| t.0.to_string()).unwrap_or_default(), e.note.clone().unwrap_or_default())
        })
        .collect();
    order.sort();
    assert!(order[2].1.contains(&format!("restarting {primary_before} ")), "primary last: {order:?}");
    env.recorded("PrimarySteppedDown", 1).await;
    let entries = support::command_log::parse(&std::fs::read_to_string(&log_path).unwrap());
    let (_, step_downs) = support::command_log::assert_legal(&entries);
    assert!(step_downs >= 1, "the primary stepped down before its restart");
    // The operator never tried its own user before it existed (a failed login costs a round
    // trip, and the driver's client then waited for its next heartbeat, about 10 s).
    assert_eq!(support::command_log::failed_logins(&entries), 0, "no login known to fail was tried");

    // Rotation: a new password in the referenced Secret reaches MongoDB and the connection Secret.
    let patch = serde_json::json!({ "stringData": { "pw": "second-password" } });
    env.api::<Secret>().patch("app-password", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    eventually("the rotated password in the connection Secret", READY_TIMEOUT, || async {
        (env.secret_text("roll-admin-app", "password").await.as_deref() == Some("second-password")).then_some(())
    })
    .await;
    eventually("the rotated password in MongoDB", READY_TIMEOUT, || async {
        login(&env, &sim, "roll-admin-app").await.ok()
    })
    .await;
    env.recorded("UserUpdated", 1).await;

    // New roles reach MongoDB; a user removed from the spec is dropped with its Secret.
    let admin = admin_target(&env, &sim).await;
    env.patch_spec(
        "roll",
        serde_json::json!({ "users": [{
        "name": "app", "db": "admin", "roles": [{"name": "read", "db": "orders"}, {"name": "read", "db": "billing"}],
        "passwordSecretRef": {"name": "app-password", "key": "pw"},
    }] }),
    )
    .await;
    env.ready("roll").await;
    let roles = user_roles(&admin, "app").await;
    assert_eq!(roles, vec![("billing".to_string(), "read".to_string()), ("orders".to_string(), "read".to_string())]);
    env.patch_spec("roll", serde_json::json!({ "users": null })).await;
    env.ready("roll").await;
    eventually("the connection Secret to go", READY_TIMEOUT, || async {
        env.api::<Secret>().get_opt("roll-admin-app").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(user_roles(&admin, "app").await.is_empty(), "the user was dropped");
    assert_eq!(env.event_count("UserDropped").await, 1);
    env.finish().await;
}

/// The operator's own login at the primary, for looking at users as the operator sees them.
async fn admin_target(env: &Env, sim: &SimMembers) -> mongo_operator::mongo::Target {
    let password =
        env.secret_text(&format!("{}-internal", "roll"), "operator-password").await.expect("operator password");
    let primary = sim.primary().expect("a primary");
    let credentials =
        mongo_operator::mongo::Credentials::scram(mongo_operator::mongo::OPERATOR_USER, "admin", &password);
    sim.target(&primary, Some(credentials)).await
}

/// A user's roles as (db, role), sorted; empty when the user does not exist.
async fn user_roles(target: &mongo_operator::mongo::Target, user: &str) -> Vec<(String, String)> {
    use mongo_operator::mongo::MongoAdmin;
    let admin = mongo_operator::mongo::DriverAdmin::new(mongo_operator::mongo::Timeouts::default());
    let users = admin.users(target, "admin").await.expect("usersInfo");
    let mut roles: Vec<(String, String)> = users
        .into_iter()
        .filter(|u| u.user == user)
        .flat_map(|u| u.roles.into_iter().map(|r| (r.db, r.role)))
        .collect();
    roles.sort();
    roles
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn heals_after_a_deleted_pod_a_partition_and_a_lost_primary() {
    let env = Env::new("mgc-heal").await;
    env.create_cluster(&cluster_yaml("heal", 3, "")).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "heal", None).await;
    env.ready("heal").await;
    let pods: Api<Pod> = env.api();

    // A deleted Pod comes back (new IP, same volume) and rejoins.
    let victim = env.pods("heal").await.into_iter().find(|p| Some(p.name_any()) != sim.primary()).unwrap();
    pods.delete(&victim.name_any(), &DeleteParams::default()).await.unwrap();
    eventually("the Pod to come back", READY_TIMEOUT, || async {
        let p = pods.get_opt(&victim.name_any()).await.ok()??;
        (p.metadata.uid != victim.metadata.uid).then_some(())
    })
    .await;
    env.ready("heal").await;
    eventually("the member to rejoin", READY_TIMEOUT, || async {
        let snap = sim.snapshot();
        let m = snap["members"].as_array()?.iter().find(|m| m["name"] == victim.name_any())?.clone();
        (m["up"] == true && m["state"] == "SECONDARY").then_some(())
    })
    .await;

    // A partitioned secondary: the set keeps its primary; once the partition ends it catches up.
    let secondary =
        env.pods("heal").await.into_iter().map(|p| p.name_any()).find(|n| Some(n.clone()) != sim.primary()).unwrap();
    sim.sim.set_partitioned(&secondary, true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(sim.primary().is_some(), "the majority keeps a primary");
    sim.sim.set_partitioned(&secondary, false);

    // The primary dies; MongoDB elects another (the operator never forces one); its Pod is
    // replaced, as the kubelet would restart the container, and it rejoins as a secondary.
    let old_primary = sim.primary().unwrap();
    sim.sim.stop_member(&old_primary);
    let new_primary =
        eventually("a new primary", READY_TIMEOUT, || async { sim.primary().filter(|p| *p != old_primary) }).await;
    pods.delete(&old_primary, &DeleteParams::default()).await.unwrap();
    let c = eventually("Ready with the new primary", READY_TIMEOUT, || async {
        let c = env.api::<MongoCluster>().get("heal").await.ok()?;
        (is_ready(&c)
            && c.status.as_ref()?.primary.as_deref() == Some(new_primary.as_str())
            && c.status.as_ref()?.ready_members == 3)
            .then_some(c)
    })
    .await;
    assert_eq!(c.status.unwrap().members.len(), 3);
    assert!(env.events("PrimarySteppedDown").await.is_empty(), "the operator did not interfere with the election");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn pause_stops_changes_and_bad_input_is_reported_without_changing_anything() {
    let env = Env::new("mgc-pause").await;
    let users = "  users:\n    - name: app\n      db: admin\n      roles: [{name: read, db: orders}]\n      passwordSecretRef: {name: missing, key: pw}\n";
    env.create_cluster(&cluster_yaml("calm", 3, users)).await;
    let _sim = SimMembers::follow(&env.client, &env.ns, "calm", None).await;

    // The missing Secret holds back only that user, with a condition and a Warning Event.
    let c = eventually("the missing Secret reported", READY_TIMEOUT, || async {
        let c = env.api::<MongoCluster>().get("calm").await.ok()?;
        let degraded = c.status.as_ref()?.conditions.iter().find(|x| x.type_ == "Degraded")?.clone();
        (degraded.status == "True"
            && degraded.reason == "PasswordSecretMissing"
            && c.status.as_ref()?.ready_members == 3)
            .then_some(c)
    })
    .await;
    let message = &c.status.unwrap().conditions.iter().find(|x| x.type_ == "Degraded").unwrap().message.clone();
    assert!(message.contains("Secret missing does not exist"), "{message}");
    env.recorded("PasswordSecretMissing", 1).await;
    assert!(env.secret_text("calm-admin-app", "password").await.is_none(), "no user without its password");
    env.patch_spec("calm", serde_json::json!({ "users": null })).await;
    env.ready("calm").await;

    // A version two majors up never gets in: admission refuses it.
    let jump = env
        .api::<MongoCluster>()
        .patch("calm", &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "spec": { "version": "10.0.1" } })))
        .await
        .expect_err("admission refuses a skipped major release");
    assert!(jump.to_string().contains("one major release at a time"), "{jump}");
    // A downgrade while the featureCompatibilityVersion is still 8.0 passes admission (it needs
    // the observed FCV) and is refused by the operator: nothing changes, the reason is in status
    // and Events.
    env.patch_spec("calm", serde_json::json!({ "version": "7.0.14" })).await;
    let c = eventually("the version refused", READY_TIMEOUT, || async {
        let c = env.api::<MongoCluster>().get("calm").await.ok()?;
        let ready = c.status.as_ref()?.conditions.iter().find(|x| x.type_ == "Ready")?.clone();
        (ready.reason == "VersionUnreachable" && c.status.as_ref()?.observed_generation == c.metadata.generation)
            .then_some(c)
    })
    .await;
    let ready = c.status.unwrap().conditions.into_iter().find(|x| x.type_ == "Ready").unwrap();
    assert!(ready.message.contains("featureCompatibilityVersion set to 7.0 first"), "{}", ready.message);
    let sts = env.api::<StatefulSet>().get("calm").await.unwrap();
    assert_eq!(sts.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(), Some("mongo:8.0.4"));
    env.recorded("VersionUnreachable", 1).await;
    env.patch_spec("calm", serde_json::json!({ "version": "8.0.4" })).await;
    env.ready("calm").await;

    // Paused: a scale-up is not acted on, and the phase says why.
    env.patch_spec("calm", serde_json::json!({ "paused": true, "members": 5 })).await;
    let c = eventually("Paused", READY_TIMEOUT, || async {
        let c = env.api::<MongoCluster>().get("calm").await.ok()?;
        (c.status.as_ref()?.phase == Some(mongo_operator::api::ClusterPhase::Paused)
            && c.status.as_ref()?.observed_generation == c.metadata.generation)
            .then_some(c)
    })
    .await;
    assert_eq!(c.status.unwrap().ready_members, 3);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.api::<StatefulSet>().get("calm").await.unwrap().spec.unwrap().replicas, Some(3));
    env.patch_spec("calm", serde_json::json!({ "paused": false })).await;
    let c = env.ready("calm").await;
    assert_eq!(c.status.unwrap().ready_members, 5);

    // Growing the disks: the StatefulSet keeps its (immutable) claim template and the claims
    // themselves are grown (this StorageClass allows expansion).
    env.patch_spec("calm", serde_json::json!({ "storage": { "size": "20Gi" } })).await;
    env.ready("calm").await;
    let claims = env.api::<PersistentVolumeClaim>();
    eventually("every claim grown to 20Gi", READY_TIMEOUT, || async {
        let list = claims.list(&ListParams::default().labels("app.kubernetes.io/instance=calm")).await.ok()?;
        let sizes: Vec<String> = list
            .items
            .iter()
            .filter_map(|c| Some(c.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage")?.0.clone()))
            .collect();
        (sizes.len() == 5 && sizes.iter().all(|s| s == "20Gi")).then_some(())
    })
    .await;
    let sts = env.api::<StatefulSet>().get("calm").await.unwrap();
    let template = &sts.spec.unwrap().volume_claim_templates.unwrap()[0];
    let size = &template.spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"];
    assert_eq!(size.0, "10Gi", "the claim template is left as created");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn deletion_policy_decides_whether_volumes_and_secrets_outlive_the_cluster() {
    let env = Env::new("mgc-delete").await;
    env.create_cluster(&cluster_yaml("keep", 1, "")).await;
    env.create_cluster(&cluster_yaml("drop", 1, "  deletionPolicy: Delete\n")).await;
    let _keep = SimMembers::follow(&env.client, &env.ns, "keep", None).await;
    let _drop = SimMembers::follow(&env.client, &env.ns, "drop", None).await;
    env.ready("keep").await;
    env.ready("drop").await;
    let clusters = env.api::<MongoCluster>();
    clusters.delete("keep", &DeleteParams::background()).await.unwrap();
    clusters.delete("drop", &DeleteParams::background()).await.unwrap();
    let claims = env.api::<PersistentVolumeClaim>();
    eventually("the Delete cluster's volume and Secret to go", READY_TIMEOUT, || async {
        let claim = claims.get_opt("data-drop-0").await.ok()?;
        let secret = env.api::<Secret>().get_opt("drop-internal").await.ok()?;
        (claim.is_none() && secret.is_none()).then_some(())
    })
    .await;
    eventually("the Retain cluster to be gone", READY_TIMEOUT, || async {
        clusters.get_opt("keep").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(claims.get_opt("data-keep-0").await.unwrap().is_some(), "Retain keeps the volume");
    assert!(env.api::<Secret>().get_opt("keep-internal").await.unwrap().is_some(), "Retain keeps the keyFile");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn converges_after_being_killed_24_times_during_create_scale_and_rollout() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("KILL_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut env = Env::new("mgc-kill").await;
    let log_path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-commands.jsonl", env.ns));
    let users = "  users:\n    - name: app\n      db: admin\n      roles: [{name: readWrite, db: orders}]\n";
    env.create_cluster(&cluster_yaml("tough", 3, users)).await;
    let log = mongo_replset_sim::CommandLog::create(&log_path).unwrap();
    let sim = SimMembers::follow(&env.client, &env.ns, "tough", Some(log)).await;

    let resources = serde_json::json!({ "resources": { "requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "1Gi"} } });
    let phases: [(&str, Option<serde_json::Value>, i32); 4] = [
        ("create", None, 3),
        ("scale to 5", Some(serde_json::json!({ "members": 5 })), 5),
        ("scale to 3", Some(serde_json::json!({ "members": 3 })), 3),
        ("rollout", Some(resources), 3),
    ];
    let mut kills = 0;
    for (phase, patch, members) in phases {
        if let Some(p) = patch {
            env.patch_spec("tough", p).await;
        }
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..2500))).await;
            if let Some(op) = env.operator.take() {
                op.kill().await;
            }
            kills += 1;
            env.operator = Some(Operator::start(&env.ns));
        }
        let c = env.ready("tough").await;
        assert_eq!(c.status.unwrap().ready_members, members, "after {phase} (seed {seed})");
    }
    assert!(kills >= 20);
    let pods = env.pods("tough").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert_eq!(memory_limit(p), "1Gi", "{} runs the new template", p.name_any());
    }
    login(&env, &sim, "tough-admin-app").await.expect("the user survived");
    let entries = support::command_log::parse(&std::fs::read_to_string(&log_path).unwrap());
    // Counted in the server's log, not by Events: a kill between createUser and the Event's
    // publication legitimately loses the Event, never the user or a second creation.
    let app_user_created =
        entries.iter().filter(|e| e.command == "createUser" && e.ok && e.doc["createUser"] == "app").count();
    assert_eq!(app_user_created, 1, "the user was created once (seed {seed})");
    let (reconfigs, _) = support::command_log::assert_legal(&entries);
    // 3→5: two adds, two promotions; 5→3: two removals (voters first demoted only if needed).
    assert!(reconfigs >= 4, "reconfigs: {reconfigs} (seed {seed})");
    env.finish().await;
}
