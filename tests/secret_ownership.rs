//! The operator writes to and deletes only the Secrets it created for a cluster: a
//! `connectionSecretName` that names somebody else's Secret is refused, a Secret that copies
//! the operator's labels cannot make it drop a user, and a Secret kept from an earlier cluster
//! of the same name is adopted with an Event.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::DeleteParams;
use mongo_operator::api::MongoCluster;
use mongo_operator::build::secrets::CLUSTER_UID_ANNOTATION;
use mongo_operator::mongo::{Credentials, DriverAdmin, MongoAdmin, OPERATOR_USER, Timeouts};
use support::cluster_env::*;
use support::members::SimMembers;
use support::*;

/// The users of `admin`, as the operator sees them at the primary.
async fn admin_users(env: &Env, sim: &SimMembers, cluster: &str) -> Vec<String> {
    let password = env.secret_text(&format!("{cluster}-internal"), "operator-password").await.expect("password");
    let primary = sim.primary().expect("a primary");
    let target = sim.target(&primary, Some(Credentials::scram(OPERATOR_USER, "admin", &password))).await;
    let admin = DriverAdmin::new(Timeouts::default());
    let mut users: Vec<String> =
        admin.users(&target, "admin").await.expect("usersInfo").into_iter().map(|u| u.user).collect();
    users.sort();
    users
}

fn degraded_reason(c: &MongoCluster) -> Option<(String, String)> {
    let d = c.status.as_ref()?.conditions.iter().find(|x| x.type_ == "Degraded" && x.status == "True")?;
    Some((d.reason.clone(), d.message.clone()))
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn a_connection_secret_name_takes_over_no_secret_and_copied_labels_drop_no_user() {
    let env = Env::new("own-secrets").await;
    // An application's own Secret, and another cluster's internal Secret (its keyFile).
    env.create_cluster(&cluster_yaml("other", 1, "")).await;
    let _other = SimMembers::follow(&env.client, &env.ns, "other", None).await;
    env.ready("other").await;
    let app_settings: Secret = create_typed(
        &env.client,
        &env.ns,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-settings\nstringData:\n  feature: enabled\n",
    )
    .await;
    let other_internal = env.api::<Secret>().get("other-internal").await.expect("other's internal Secret");
    let users = "  users:\n    - name: app\n      db: admin\n      roles: [{name: readWrite, db: orders}]\n      connectionSecretName: app-settings\n    - name: thief\n      db: admin\n      roles: [{name: read, db: orders}]\n      connectionSecretName: other-internal\n    - name: report\n      db: admin\n      roles: [{name: read, db: orders}]\n";
    env.create_cluster(&cluster_yaml("bank", 1, users)).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "bank", None).await;

    let c = eventually("the foreign Secrets refused", READY_TIMEOUT, || async {
        let c = env.api::<MongoCluster>().get("bank").await.ok()?;
        let (reason, _) = degraded_reason(&c)?;
        (reason == "ConnectionSecretNotOwned" && c.status.as_ref()?.ready_members == 1).then_some(c)
    })
    .await;
    let (_, message) = degraded_reason(&c).expect("degraded");
    assert!(
        message.contains("Secret app-settings exists") && message.contains("the operator did not create it"),
        "{message}"
    );
    // Each refused name has its own Warning Event.
    let notes = eventually("both names in Events", READY_TIMEOUT, || async {
        let notes: Vec<String> =
            env.events("ConnectionSecretNotOwned").await.into_iter().filter_map(|e| e.note).collect();
        notes.iter().any(|n| n.contains("internal-credentials Secret of cluster other")).then_some(notes)
    })
    .await;
    assert!(notes.iter().any(|n| n.contains("user thief@admin: Secret other-internal")), "{notes:?}");
    eventually("the declared user with a Secret of its own created", READY_TIMEOUT, || async {
        env.secret_text("bank-admin-report", "password").await
    })
    .await;
    let unchanged = |before: &Secret, after: &Secret| {
        before.data == after.data && before.labels() == after.labels() && before.annotations() == after.annotations()
    };
    assert!(unchanged(&app_settings, &env.api::<Secret>().get("app-settings").await.expect("kept")));
    assert!(unchanged(&other_internal, &env.api::<Secret>().get("other-internal").await.expect("kept")));
    let users = admin_users(&env, &sim, "bank").await;
    assert!(users.contains(&"report".to_string()) && !users.contains(&"app".to_string()), "{users:?}");
    assert!(!users.contains(&"thief".to_string()), "{users:?}");

    // Somebody who can create Secrets copies the labels and annotations of a connection
    // Secret, naming the operator's own user and a declared one.
    let bank = env.api::<Secret>().get("bank-admin-report").await.expect("report's Secret");
    for (name, user) in [("forged-operator", OPERATOR_USER), ("forged-report", "report")] {
        let mut forged = Secret::default();
        forged.metadata.name = Some(name.into());
        forged.metadata.labels = Some(bank.labels().clone());
        let mut annotations: BTreeMap<String, String> = bank.annotations().clone();
        annotations.insert("mongo.operator.rs/user".into(), user.into());
        annotations.remove(CLUSTER_UID_ANNOTATION);
        forged.metadata.annotations = Some(annotations);
        env.api::<Secret>().create(&Default::default(), &forged).await.expect("create a forged Secret");
    }
    // A change to the users makes the operator look at every Secret with its labels; the
    // foreign names go too, and their Secrets stay as they were.
    env.patch_spec(
        "bank",
        serde_json::json!({ "users": [{ "name": "report", "db": "admin", "roles": [{ "name": "read", "db": "orders" }] }] }),
    )
    .await;
    env.ready("bank").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let users = admin_users(&env, &sim, "bank").await;
    assert!(users.contains(&OPERATOR_USER.to_string()), "the operator's own user is never dropped: {users:?}");
    assert!(users.contains(&"report".to_string()), "a declared user is not dropped by a copy: {users:?}");
    for name in ["forged-operator", "forged-report", "app-settings", "other-internal"] {
        assert!(env.api::<Secret>().get_opt(name).await.expect("get").is_some(), "{name} is not deleted");
    }
    assert_eq!(env.event_count("UserDropped").await, 0);
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn secrets_kept_from_an_earlier_cluster_of_the_same_name_are_adopted_with_an_event() {
    let env = Env::new("adopt").await;
    let users = "  users:\n    - name: app\n      db: admin\n      roles: [{name: readWrite, db: orders}]\n";
    let first = env.create_cluster(&cluster_yaml("keep", 1, users)).await;
    {
        let _sim = SimMembers::follow(&env.client, &env.ns, "keep", None).await;
        env.ready("keep").await;
    }
    let first_uid = first.uid().expect("uid");
    let internal = env.api::<Secret>().get("keep-internal").await.expect("internal Secret");
    assert_eq!(internal.annotations().get(CLUSTER_UID_ANNOTATION), Some(&first_uid), "bound to its cluster");
    let clusters = env.api::<MongoCluster>();
    clusters.delete("keep", &DeleteParams::background()).await.expect("delete");
    eventually("the cluster gone", READY_TIMEOUT, || async {
        clusters.get_opt("keep").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(env.event_count("SecretAdopted").await, 0, "nothing adopted by the cluster that made them");

    let second = env.create_cluster(&cluster_yaml("keep", 1, users)).await;
    let _sim = SimMembers::follow(&env.client, &env.ns, "keep", None).await;
    env.ready("keep").await;
    let second_uid = second.uid().expect("uid");
    for name in ["keep-internal", "keep-admin-app"] {
        let secret = env.api::<Secret>().get(name).await.expect("kept Secret");
        assert_eq!(
            secret.annotations().get(CLUSTER_UID_ANNOTATION),
            Some(&second_uid),
            "{name} bound to the new cluster"
        );
    }
    let adopted = env.recorded("SecretAdopted", 2).await;
    let notes: Vec<String> = adopted.iter().filter_map(|e| e.note.clone()).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("Secret keep-internal") && n.contains(&first_uid)), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("Secret keep-admin-app") && n.contains(&first_uid)), "{notes:?}");
    assert!(
        adopted.iter().any(|e| e.type_.as_deref() == Some("Warning")),
        "the keyFile's adoption is a Warning: whoever had the old cluster's keyFile has this one's"
    );
    env.finish().await;
}
