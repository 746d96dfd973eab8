//! Rollouts and MongoDB upgrades end to end: the real operator on the local control plane,
//! simulated members that run the release their Pod's image names and that refuse, as mongod
//! does, a featureCompatibilityVersion their binary cannot read.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;
use mongo_operator::api::MongoCluster;
use support::cluster_env::*;
use support::members::SimMembers;

/// The Pods' UIDs, by name.
async fn uids(env: &Env, cluster: &str) -> BTreeMap<String, String> {
    env.pods(cluster).await.iter().map(|p| (p.name_any(), p.metadata.uid.clone().unwrap_or_default())).collect()
}

fn status(c: &MongoCluster) -> &mongo_operator::api::MongoClusterStatus {
    c.status.as_ref().expect("a status")
}

/// Waits until the cluster's status satisfies `check`.
async fn until(env: &Env, name: &str, what: &str, check: impl Fn(&MongoCluster) -> bool) -> MongoCluster {
    support::eventually(what, READY_TIMEOUT, || async {
        let c = env.api::<MongoCluster>().get(name).await.ok()?;
        check(&c).then_some(c)
    })
    .await
}

/// Runs `setFeatureCompatibilityVersion 7.0` on the cluster's primary as `__system`, as a user
/// with the keyFile could.
async fn lower_fcv_by_hand(env: &Env, sim: &SimMembers, cluster: &str) {
    use mongo_operator::mongo::MongoAdmin;
    let key = env.secret_text(&format!("{cluster}-internal"), "keyfile").await.expect("keyFile");
    let primary = sim.primary().expect("a primary");
    let target = sim.target(&primary, Some(mongo_operator::mongo::Credentials::from_key_file(&key))).await;
    let admin = mongo_operator::mongo::DriverAdmin::new(mongo_operator::mongo::Timeouts::default());
    admin.set_feature_compatibility_version(&target, "7.0", true).await.expect("lower the FCV");
}

/// Asks the operator for a look, as `kubectl annotate` would: nothing in Kubernetes changed.
async fn request_reconcile(env: &Env, cluster: &str) {
    let request = serde_json::json!({ "metadata": { "annotations": {
        mongo_operator::controller::cluster::RECONCILE_REQUEST_ANNOTATION: k8s_openapi::jiff::Timestamp::now().to_string(),
    }}});
    env.api::<MongoCluster>()
        .patch(cluster, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&request))
        .await
        .expect("request a reconcile");
}

const AUTOMATIC_AT_ONCE: &str = "  featureCompatibility: {policy: Automatic, soakTime: 0s}\n";

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn one_two_and_three_members_roll_out_a_resource_change_and_an_upgrade() {
    let env = Env::new("roll-sizes").await;
    let mut sims = Vec::new();
    for n in [1, 2, 3] {
        let name = format!("size{n}");
        let yaml = cluster_yaml(&name, n, AUTOMATIC_AT_ONCE).replace("8.0.4", "7.0.12");
        env.create_cluster(&yaml).await;
        sims.push(SimMembers::follow(&env.client, &env.ns, &name, None).await);
    }
    for n in [1, 2, 3] {
        let c = env.ready(&format!("size{n}")).await;
        assert_eq!(status(&c).feature_compatibility_version.as_deref(), Some("7.0"), "size{n}");
    }

    // A resource change restarts every member, a lone primary too (without a failover).
    let resources = serde_json::json!({ "resources": { "requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "1Gi"} } });
    let mut before = BTreeMap::new();
    for n in [1, 2, 3] {
        before.insert(n, uids(&env, &format!("size{n}")).await);
        env.patch_spec(&format!("size{n}"), resources.clone()).await;
    }
    for n in [1, 2, 3] {
        let name = format!("size{n}");
        env.ready(&name).await;
        let after = uids(&env, &name).await;
        for (pod, uid) in &before[&n] {
            assert_ne!(after.get(pod), Some(uid), "{pod} was restarted");
        }
        for p in env.pods(&name).await {
            assert_eq!(memory_limit(&p), "1Gi", "{} runs the new template", p.name_any());
        }
    }
    // One member: no one to fail over to. Two members: one voter (and a non-voting copy) —
    // no one either. Three: a step-down each time, never a restart without a failover.
    let without = env.events("RestartingWithoutFailover").await;
    let restarted: Vec<String> = without.iter().filter_map(|e| e.note.clone()).collect();
    assert!(restarted.iter().any(|n| n.contains("size1-0")), "{restarted:?}");
    assert!(restarted.iter().any(|n| n.contains("size2-")), "{restarted:?}");
    assert!(!restarted.iter().any(|n| n.contains("size3-")), "{restarted:?}");
    assert!(restarted.iter().all(|n| n.contains("the database is unavailable")), "{restarted:?}");
    assert_eq!(without[0].type_.as_deref(), Some("Warning"));

    // 7.0 → 8.0: every member restarts on the new binary, then the FCV follows (soak 0s).
    for n in [1, 2, 3] {
        env.patch_spec(&format!("size{n}"), serde_json::json!({ "version": "8.0.4" })).await;
    }
    for n in [1, 2, 3] {
        let name = format!("size{n}");
        let c = until(&env, &name, "the upgrade and the FCV raised", |c| {
            is_ready(c)
                && status(c).version.as_deref() == Some("8.0.4")
                && status(c).feature_compatibility_version.as_deref() == Some("8.0")
        })
        .await;
        assert_eq!(status(&c).ready_members, n);
    }
    assert_eq!(env.event_count("FeatureCompatibilityVersionSet").await, 3);
    drop(sims);
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn the_feature_compatibility_version_follows_its_policy_and_the_downgrade_path_works() {
    let env = Env::new("roll-fcv").await;
    let soak = "  featureCompatibility: {policy: Automatic, soakTime: 25s}\n";
    let manual = "  featureCompatibility: {policy: Manual}\n";
    for (name, extra) in [("auto", soak), ("manual", manual)] {
        env.create_cluster(&cluster_yaml(name, 3, extra).replace("8.0.4", "7.0.12")).await;
    }
    let auto = SimMembers::follow(&env.client, &env.ns, "auto", None).await;
    let _manual = SimMembers::follow(&env.client, &env.ns, "manual", None).await;
    env.ready("auto").await;
    env.ready("manual").await;
    for name in ["auto", "manual"] {
        env.patch_spec(name, serde_json::json!({ "version": "8.0.4" })).await;
    }

    // Automatic: Ready on 8.0.4 with the FCV still 7.0, raised only after the soak time.
    // A look while a restarted member's version is not read yet says so instead; the soak's
    // message follows with the next look.
    let c = until(&env, "auto", "auto on 8.0.4, the FCV raise announced", |c| {
        let announced = status(c).feature_compatibility_version.as_deref() == Some("8.0")
            || status(c).feature_compatibility_message.as_deref().is_some_and(|m| m.contains("7.0 → 8.0 at"));
        is_ready(c) && status(c).version.as_deref() == Some("8.0.4") && announced
    })
    .await;
    let since = status(&c).version_since.clone().expect("versionSince").0;
    let c = until(&env, "auto", "the FCV raised after the soak", |c| {
        status(c).feature_compatibility_version.as_deref() == Some("8.0")
    })
    .await;
    let raised = env.recorded("FeatureCompatibilityVersionSet", 1).await;
    let raised_at = raised.iter().filter_map(|e| e.event_time.as_ref().map(|t| t.0)).min().expect("an Event");
    assert!(
        raised_at.duration_since(since).as_secs() >= 24,
        "raised {}s after every member ran 8.0, before the 25s soak",
        raised_at.duration_since(since).as_secs()
    );
    assert!(is_ready(&c));

    // A patch downgrade: members restart on 8.0.3, the FCV stays.
    env.patch_spec("auto", serde_json::json!({ "version": "8.0.3" })).await;
    let c =
        until(&env, "auto", "the patch downgrade", |c| is_ready(c) && status(c).version.as_deref() == Some("8.0.3"))
            .await;
    assert_eq!(status(&c).feature_compatibility_version.as_deref(), Some("8.0"));

    // Paused, the status still follows the FCV: someone lowers it by hand, and it shows.
    env.patch_spec("auto", serde_json::json!({ "paused": true })).await;
    until(&env, "auto", "paused", |c| status(c).phase == Some(mongo_operator::api::ClusterPhase::Paused)).await;
    lower_fcv_by_hand(&env, &auto, "auto").await;
    // Nothing in Kubernetes changed; ask for a look.
    request_reconcile(&env, "auto").await;
    let c = until(&env, "auto", "the FCV seen while paused", |c| {
        status(c).feature_compatibility_version.as_deref() == Some("7.0")
    })
    .await;
    assert_eq!(status(&c).phase, Some(mongo_operator::api::ClusterPhase::Paused));

    // Manual: the FCV stays at 7.0 on 8.0 binaries, so the binary can go back to 7.0.
    let c = until(&env, "manual", "manual on 8.0.4", |c| is_ready(c) && status(c).version.as_deref() == Some("8.0.4"))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = env.api::<MongoCluster>().get("manual").await.unwrap_or(c);
    assert_eq!(status(&c).feature_compatibility_version.as_deref(), Some("7.0"), "Manual never raises by itself");
    env.patch_spec("manual", serde_json::json!({ "version": "7.0.14" })).await;
    until(&env, "manual", "back on 7.0.14", |c| is_ready(c) && status(c).version.as_deref() == Some("7.0.14")).await;

    // Up again, the FCV raised by naming it, then the documented way down: lower the FCV, then
    // the binary.
    env.patch_spec("manual", serde_json::json!({ "version": "8.0.4" })).await;
    until(&env, "manual", "on 8.0.4 again", |c| is_ready(c) && status(c).version.as_deref() == Some("8.0.4")).await;
    env.patch_spec("manual", serde_json::json!({ "featureCompatibility": { "version": "8.0" } })).await;
    until(&env, "manual", "the FCV raised by hand", |c| {
        status(c).feature_compatibility_version.as_deref() == Some("8.0")
    })
    .await;
    env.patch_spec("manual", serde_json::json!({ "version": "7.0.14" })).await;
    let refused = until(&env, "manual", "the downgrade refused", |c| {
        c.status.as_ref().is_some_and(|s| {
            s.observed_generation == c.metadata.generation
                && s.conditions.iter().any(|x| x.type_ == "Ready" && x.reason == "VersionUnreachable")
        })
    })
    .await;
    assert!(refused.status.iter().flat_map(|s| &s.conditions).any(|x| x.type_ == "Stalled" && x.status == "True"));
    env.patch_spec("manual", serde_json::json!({ "version": "8.0.4", "featureCompatibility": { "version": "7.0" } }))
        .await;
    until(&env, "manual", "the FCV lowered", |c| status(c).feature_compatibility_version.as_deref() == Some("7.0"))
        .await;
    env.patch_spec("manual", serde_json::json!({ "version": "7.0.14" })).await;
    let c =
        until(&env, "manual", "downgraded to 7.0", |c| is_ready(c) && status(c).version.as_deref() == Some("7.0.14"))
            .await;
    assert_eq!(status(&c).ready_members, 3);
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn a_broken_template_rolls_back_when_the_spec_is_reverted() {
    let env = Env::new("roll-broken").await;
    env.create_cluster(&cluster_yaml("trio", 3, "")).await;
    env.create_cluster(&cluster_yaml("solo", 1, "")).await;
    let _trio = SimMembers::follow(&env.client, &env.ns, "trio", None).await;
    let _solo = SimMembers::follow(&env.client, &env.ns, "solo", None).await;
    env.ready("trio").await;
    env.ready("solo").await;
    let before = uids(&env, "trio").await;

    // An image that does not exist: the first member restarted on it never becomes ready, and
    // the rollout goes no further.
    for name in ["trio", "solo"] {
        env.patch_spec(name, serde_json::json!({ "image": "mongo:does-not-exist" })).await;
    }
    let broken = support::eventually("a member crash-looping on the new template", READY_TIMEOUT, || async {
        let pods = env.pods("trio").await;
        let p = pods.iter().find(|p| before.get(&p.name_any()) != p.metadata.uid.as_ref())?;
        let ready = p.status.as_ref()?.conditions.as_ref()?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        (!ready && p.status.as_ref()?.phase.as_deref() == Some("Running")).then(|| p.name_any())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = uids(&env, "trio").await;
    let restarted: Vec<&String> = during.iter().filter(|(n, u)| before.get(*n) != Some(*u)).map(|(n, _)| n).collect();
    assert_eq!(restarted, vec![&broken], "only one member tried the broken template");

    // Reverted: the crash-looping Pod (now on an old template, serving nothing) is replaced,
    // with no manual step; the healthy members were never touched.
    for name in ["trio", "solo"] {
        env.patch_spec(name, serde_json::json!({ "image": null })).await;
    }
    let c = env.ready("trio").await;
    assert_eq!(status(&c).ready_members, 3);
    let after = uids(&env, "trio").await;
    for (pod, uid) in &before {
        if pod != &broken {
            assert_eq!(after.get(pod), Some(uid), "{pod} was not restarted");
        }
    }
    // The lone member, whose mongod never answers on the broken image, comes back the same way.
    let c = env.ready("solo").await;
    assert_eq!(status(&c).ready_members, 1);
    let replaced = env.recorded("MemberReplaced", 1).await;
    let notes: Vec<String> = replaced.iter().filter_map(|e| e.note.clone()).collect();
    assert!(notes.iter().any(|n| n.contains(&broken)), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("solo-0")), "{notes:?}");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn a_step_waiting_for_a_lagging_member_is_taken_once_it_has_caught_up_with_nothing_else_changing() {
    let env = Env::new("roll-lag").await;
    env.create_cluster(&cluster_yaml("lag", 3, AUTOMATIC_AT_ONCE)).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "lag", None).await;
    let c = env.ready("lag").await;
    assert_eq!(status(&c).feature_compatibility_version.as_deref(), Some("8.0"));

    // A secondary falls more than 10 s behind: the set stays Ready, but not healthy enough for
    // a featureCompatibilityVersion change.
    let primary = sim.primary().expect("a primary");
    let behind = ["lag-0", "lag-1", "lag-2"].into_iter().find(|p| *p != primary).expect("a secondary");
    assert!(sim.sim.set_lag(behind, Duration::from_secs(120)));
    let lagging = |c: &MongoCluster| {
        c.status
            .as_ref()
            .is_some_and(|s| s.members.iter().any(|m| m.name == behind && m.lag_seconds.is_some_and(|l| l > 10)))
    };
    support::eventually(&format!("{behind} seen lagging"), READY_TIMEOUT, || async {
        request_reconcile(&env, "lag").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let c = env.api::<MongoCluster>().get("lag").await.ok()?;
        lagging(&c).then_some(())
    })
    .await;
    lower_fcv_by_hand(&env, &sim, "lag").await;
    request_reconcile(&env, "lag").await;
    let c = until(&env, "lag", "the raise waiting for the lagging member", |c| {
        status(c).feature_compatibility_version.as_deref() == Some("7.0")
            && status(c).feature_compatibility_message.as_deref().is_some_and(|m| m.contains("is healthy"))
    })
    .await;
    assert!(is_ready(&c), "Ready while one member lags: {:?}", status(&c).conditions);

    // It catches up, which changes nothing in Kubernetes: the operator looks again by itself.
    assert!(sim.sim.set_lag(behind, Duration::ZERO));
    let c = until(&env, "lag", "the FCV raised once every member caught up", |c| {
        status(c).feature_compatibility_version.as_deref() == Some("8.0")
    })
    .await;
    assert!(is_ready(&c));
    env.finish().await;
}
