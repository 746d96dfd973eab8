//! TLS end to end: the real operator binary on the local control plane, simulated members that
//! speak TLS as mongod does (the mode from mongod.conf, the certificate from the members'
//! Secret), the real driver as a client.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::PostParams;
use mongo_operator::api::{MongoCluster, TlsMode};
use mongo_operator::mongo::{Credentials, DriverAdmin, MongoAdmin, Target, Timeouts};
use support::cluster_env::*;
use support::members::SimMembers;

fn tls_status(c: &MongoCluster) -> Option<mongo_operator::api::TlsStatus> {
    c.status.as_ref()?.tls.clone()
}

/// Waits until the cluster is Ready with every member running `mode`.
async fn ready_in(env: &Env, name: &str, mode: TlsMode) -> MongoCluster {
    support::eventually(&format!("{name} Ready in TLS mode {mode:?}"), Duration::from_secs(240), || async {
        let c = env.api::<MongoCluster>().get(name).await.ok()?;
        (is_ready(&c) && tls_status(&c).is_some_and(|t| t.mode == mode && t.step.is_none())).then_some(c)
    })
    .await
}

/// A `hello` over plain text, or over TLS with `ca`, at a member by its DNS name.
async fn hello(sim: &SimMembers, pod: &str, ca: Option<std::path::PathBuf>) -> Result<(), String> {
    let mut target: Target = sim.target(pod, None).await;
    target.tls = ca;
    let admin = DriverAdmin::new(Timeouts { server_selection: Duration::from_secs(2), ..Timeouts::default() });
    admin.hello(&target).await.map(|_| ()).map_err(|e| e.to_string())
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn a_new_cluster_requires_tls_and_clients_verify_it_with_the_secrets_ca() {
    let env = Env::new("tls-new").await;
    let users = "  users:\n    - name: app\n      db: admin\n      roles: [{name: readWrite, db: orders}]\n";
    env.create_cluster(&cluster_yaml("vault", 3, users)).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "vault", None).await;
    let c = ready_in(&env, "vault", TlsMode::Require).await;
    let tls = tls_status(&c).expect("status.tls");
    let expires = tls.certificate_not_after.expect("the certificate's expiry").0;
    let days = (expires.as_second() - k8s_openapi::jiff::Timestamp::now().as_second()) / 86_400;
    assert!((89..=90).contains(&days), "a 90-day certificate by default: {days} days left");
    assert!(tls.ca_not_after.is_some());
    // The members run requireTLS, started so: no restart was needed.
    for p in env.pods("vault").await {
        assert!(
            p.annotations().get("mongo.operator.rs/tls-restart").is_some_and(|t| t.starts_with("requireTLS@")),
            "{}",
            p.name_any()
        );
    }
    // A plaintext client is refused; one with the cluster's CA gets in; one with another CA
    // is refused, with a message that says why.
    let ca = sim.ca_file().await;
    let pod = "vault-0";
    hello(&sim, pod, Some(ca.clone())).await.expect("TLS with the cluster's CA");
    let plain = hello(&sim, pod, None).await.expect_err("plain text refused under requireTLS");
    assert!(!plain.is_empty());
    let now = time::OffsetDateTime::now_utc();
    let stranger = mongo_operator::certs::issue_ca("elsewhere/other", now, Duration::from_secs(86_400)).expect("CA");
    let wrong = support::members::write_ca("wrong-ca", &stranger.cert_pem);
    let refused = hello(&sim, pod, Some(wrong)).await.expect_err("another CA refused");
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    // The connection Secret alone is enough: tls=true in both strings, and the CA.
    let standard = env.secret_text("vault-admin-app", "connectionString.standard").await.expect("uri");
    let srv = env.secret_text("vault-admin-app", "connectionString.standardSrv").await.expect("srv");
    assert!(standard.ends_with("&tls=true") && srv.ends_with("&tls=true"), "{standard} {srv}");
    let secret_ca = env.secret_text("vault-admin-app", "ca.crt").await.expect("ca.crt");
    let password = env.secret_text("vault-admin-app", "password").await.expect("password");
    let mut app = sim.target(pod, Some(Credentials::scram("app", "admin", &password))).await;
    app.tls = Some(support::members::write_ca("vault-app", &secret_ca));
    let admin = DriverAdmin::new(Timeouts::default());
    admin
        .users(&app, "admin")
        .await
        .map(|_| ())
        .or_else(|e| match e {
            // `usersInfo` of others needs more than readWrite: logged in is what is shown.
            mongo_operator::mongo::AdminError::Unauthorized(_) => Ok(()),
            other => Err(other),
        })
        .expect("the application logs in over TLS");
    // The CA's key never leaves its Secret; the Pods mount the members' Secret only.
    let ca_secret = env.api::<Secret>().get("vault-ca").await.expect("CA Secret");
    assert!(ca_secret.data.expect("data").contains_key("ca.key"));
    for p in env.pods("vault").await {
        let mounted: Vec<String> = p
            .spec
            .expect("spec")
            .volumes
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.secret.as_ref().and_then(|s| s.secret_name.clone()))
            .collect();
        assert!(!mounted.contains(&"vault-ca".to_string()), "{mounted:?}");
        assert!(mounted.contains(&"vault-tls".to_string()), "{mounted:?}");
    }
    env.finish().await;
}

/// Samples whether the set has a primary every 100 ms; returns the longest stretch without one.
fn sample_primary(sim: Arc<SimMembers>) -> (Arc<AtomicBool>, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let longest = Arc::new(AtomicU64::new(0));
    let (s, l) = (stop.clone(), longest.clone());
    let task = tokio::spawn(async move {
        let mut since: Option<Instant> = None;
        while !s.load(Ordering::Relaxed) {
            match (sim.primary(), since) {
                (Some(_), Some(start)) => {
                    let gap = start.elapsed().as_millis() as u64;
                    if gap > 3_000 {
                        println!("no primary for {gap} ms, until {:?}", std::time::SystemTime::now());
                    }
                    l.fetch_max(gap, Ordering::Relaxed);
                    since = None;
                }
                (None, None) => since = Some(Instant::now()),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (stop, longest, task)
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn tls_is_turned_on_and_off_on_a_running_cluster_one_step_at_a_time() {
    let env = Env::new("tls-move").await;
    env.create_cluster(&cluster_yaml("ledger", 3, "  tls: {mode: Disabled}\n")).await;
    let sim = Arc::new(SimMembers::follow(&env.client, &env.ns, "ledger", None).await);
    ready_in(&env, "ledger", TlsMode::Disabled).await;
    assert!(env.api::<Secret>().get_opt("ledger-tls").await.expect("read").is_none(), "no certificate while off");
    let (stop, longest, sampler) = sample_primary(sim.clone());

    // On: one rolling restart into allowTLS, then preferTLS and requireTLS at run time.
    env.patch_spec("ledger", serde_json::json!({ "tls": { "mode": "Require" } })).await;
    ready_in(&env, "ledger", TlsMode::Require).await;
    // The Events recorder folds repeats about one object into a series: counted with them.
    let restarts = env.event_count("MemberRestarting").await;
    assert_eq!(restarts, 3, "one rolling restart turned TLS on");
    let raised: Vec<String> = env.recorded("TlsModeRaised", 1).await.into_iter().filter_map(|e| e.note).collect();
    assert!(raised.iter().any(|n| n.contains("allowTLS to preferTLS")), "{raised:?}");
    assert_eq!(env.event_count("TlsModeRaised").await, 2, "allowTLS → preferTLS → requireTLS at run time");
    assert!(hello(&sim, "ledger-1", None).await.is_err(), "plain text refused once required");
    let uids: Vec<_> = env.pods("ledger").await.iter().map(|p| p.uid()).collect();

    // Off: three rolling restarts, one mode down each.
    env.patch_spec("ledger", serde_json::json!({ "tls": { "mode": "Disabled" } })).await;
    ready_in(&env, "ledger", TlsMode::Disabled).await;
    assert_eq!(env.event_count("MemberRestarting").await, restarts + 9, "three rolling restarts turned it off");
    hello(&sim, "ledger-1", None).await.expect("plain text again");
    assert!(env.pods("ledger").await.iter().all(|p| !uids.contains(&p.uid())));

    stop.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");
    // Members restart one at a time, the primary last after a step-down: the set is without
    // a primary only for the election that follows each step-down.
    let gap = longest.load(Ordering::Relaxed);
    println!("longest time without a primary while TLS was turned on and off: {gap} ms");
    assert!(gap < 5_000, "{gap} ms without a primary");
    env.finish().await;
}

fn tls_secret(name: &str, cert: &str, key: &str, ca: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            [("tls.crt", cert), ("tls.key", key), ("ca.crt", ca)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn a_users_certificate_is_checked_used_followed_and_refused_with_the_reason() {
    let env = Env::new("tls-user").await;
    let now = time::OffsetDateTime::now_utc();
    let day = Duration::from_secs(86_400);
    let names = mongo_operator::build::names::ClusterNames::new("shop", &env.ns);
    let ca = mongo_operator::certs::issue_ca("their/ca", now, day * 30).expect("CA");
    let good = mongo_operator::certs::issue_server(
        &ca,
        "their/shop",
        &mongo_operator::certs::server_names(&names, "cluster.local", &[]),
        now,
        day * 10,
    )
    .expect("certificate");
    let narrow =
        mongo_operator::certs::issue_server(&ca, "their/shop", &["localhost".into()], now, day).expect("narrow");
    let secrets = env.api::<Secret>();
    secrets
        .create(&PostParams::default(), &tls_secret("theirs", &good.cert_pem, &good.key_pem, &ca.cert_pem))
        .await
        .expect("create");
    secrets
        .create(&PostParams::default(), &tls_secret("too-narrow", &narrow.cert_pem, &narrow.key_pem, &ca.cert_pem))
        .await
        .expect("create");

    // A certificate that does not cover the members is refused, with the reason.
    env.create_cluster(&cluster_yaml("shop", 1, "  tls: {certificateSecretRef: {name: too-narrow}}\n")).await;
    let c = support::eventually("the refusal", READY_TIMEOUT, || async {
        let c = env.api::<MongoCluster>().get("shop").await.ok()?;
        let degraded = c.status.as_ref()?.conditions.iter().find(|x| x.type_ == "Degraded")?.clone();
        (degraded.reason == "TlsCertificateUnusable").then_some(degraded.message)
    })
    .await;
    assert!(c.contains("too-narrow") && c.contains("not valid for name"), "{c}");

    // The user's certificate is what the members present once the spec names it.
    env.patch_spec("shop", serde_json::json!({ "tls": { "certificateSecretRef": { "name": "theirs" } } })).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "shop", None).await;
    ready_in(&env, "shop", TlsMode::Require).await;
    let members = env.secret_text("shop-tls", "tls.crt").await.expect("members' Secret");
    assert_eq!(members, good.cert_pem, "the user's certificate");
    assert!(env.api::<Secret>().get_opt("shop-ca").await.expect("read").is_none(), "no CA of the operator's");
    let theirs = support::members::write_ca("their-ca", &ca.cert_pem);
    hello(&sim, "shop-0", Some(theirs)).await.expect("verified with the user's CA");
    let before: Vec<_> = env.pods("shop").await.iter().map(|p| (p.name_any(), p.uid())).collect();

    // Whoever renews it (cert-manager, say) writes the Secret; the operator follows at once
    // (it watches the Secret; nothing else would bring it back) and rotates it into the
    // members. One two days into a three-day life is past its renewal point: a condition and
    // a Warning say it has not been renewed.
    let wanted_names = mongo_operator::certs::server_names(&names, "cluster.local", &[]);
    let two_days_ago = now - time::Duration::days(2);
    let aging =
        mongo_operator::certs::issue_server(&ca, "their/shop", &wanted_names, two_days_ago, day * 3).expect("aging");
    let renew = |cert: mongo_operator::certs::Issued| {
        let secrets = secrets.clone();
        let ca = ca.cert_pem.clone();
        async move {
            let mut secret = secrets.get("theirs").await.expect("read");
            secret.data = tls_secret("theirs", &cert.cert_pem, &cert.key_pem, &ca).data;
            secrets.replace("theirs", &PostParams::default(), &secret).await.expect("write");
        }
    };
    let served = |cert: &mongo_operator::certs::Issued| mongo_operator::mongo::handshake::fingerprint(&cert.cert_pem);
    let degraded = || async {
        let c = env.api::<MongoCluster>().get("shop").await.ok()?;
        let d = c.status.as_ref()?.conditions.iter().find(|x| x.type_ == "Degraded")?.clone();
        Some((d.reason, d.message, tls_status(&c)?.served_certificate))
    };
    renew(aging.clone()).await;
    let message =
        support::eventually("the aging certificate flagged and presented", Duration::from_secs(60), || async {
            let (reason, message, presented) = degraded().await?;
            (reason == "TlsCertificateExpiring" && presented == served(&aging)).then_some(message)
        })
        .await;
    assert!(message.contains("Secret theirs") && message.contains("has not been renewed"), "{message}");
    env.recorded("TlsCertificateExpiring", 1).await;
    let fresh = mongo_operator::certs::issue_server(&ca, "their/shop", &wanted_names, now, day * 10).expect("fresh");
    renew(fresh.clone()).await;
    support::eventually(
        "the renewed certificate presented, the condition cleared",
        Duration::from_secs(60),
        || async {
            let (reason, _, presented) = degraded().await?;
            (reason == "Healthy" && presented == served(&fresh)).then_some(())
        },
    )
    .await;
    let after: Vec<_> = env.pods("shop").await.iter().map(|p| (p.name_any(), p.uid())).collect();
    assert_eq!(before, after, "no Pod was restarted");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn a_renewed_certificate_reaches_running_members_without_a_restart() {
    let env = Env::new("tls-renew").await;
    // A 40-second life renewed half-way: the production settings, made short to see it happen.
    env.create_cluster(&cluster_yaml("clock", 3, "  tls: {certificateLifetime: 40s, renewAtPercent: 50}\n")).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "clock", None).await;
    let c = ready_in(&env, "clock", TlsMode::Require).await;
    let first = support::eventually("the members seen presenting the certificate", READY_TIMEOUT, || async {
        tls_status(&env.api::<MongoCluster>().get("clock").await.ok()?)?.served_certificate
    })
    .await;
    let before: Vec<_> = env.pods("clock").await.iter().map(|p| (p.name_any(), p.uid())).collect();
    // The members' files change seconds after the Secret (the kubelet's sync): the operator
    // says it waits for them, and asks again.
    let waited_for_files = AtomicBool::new(false);
    let renewed =
        support::eventually("a renewed certificate presented by every member", Duration::from_secs(120), || async {
            let status = tls_status(&env.api::<MongoCluster>().get("clock").await.ok()?)?;
            if status.step.as_deref().is_some_and(|s| s.contains("to reach the files of")) {
                waited_for_files.store(true, Ordering::Relaxed);
            }
            let served = status.served_certificate?;
            (served != first).then_some(served)
        })
        .await;
    assert!(waited_for_files.load(Ordering::Relaxed), "the status said it waited for the kubelet to update the files");
    let admin = DriverAdmin::new(Timeouts::default());
    for (pod, _) in &before {
        let target = sim.target(pod, None).await;
        let presented = admin.presented_certificate(&target).await.expect("a TLS handshake");
        let current = mongo_operator::mongo::handshake::fingerprint(
            &env.secret_text("clock-tls", "tls.crt").await.expect("certificate"),
        );
        // The Secret may have been renewed again since; what a member presents is what the
        // status said, or newer.
        assert!(presented == renewed || Some(&presented) == current.as_ref(), "{pod} presents {presented}");
    }
    // The Events recorder folds repeats of one reason about one object into a series.
    for (reason, at_least) in [("CertificateRenewed", 1), ("CertificateRotated", 3)] {
        support::eventually(&format!("{at_least} {reason}"), Duration::from_secs(30), || async {
            (env.event_count(reason).await >= at_least).then_some(())
        })
        .await;
    }
    let after: Vec<_> = env.pods("clock").await.iter().map(|p| (p.name_any(), p.uid())).collect();
    assert_eq!(before, after, "no Pod was restarted");
    assert!(is_ready(&c));
    env.finish().await;
}

/// How many certificates a PEM text holds.
fn certificates_in(pem: &str) -> usize {
    mongo_operator::certs::inspect_bundle(pem).map_or(0, |b| b.len())
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn a_ca_renewal_goes_through_a_bundle_and_cuts_off_no_client_that_took_it() {
    let env = Env::new("tls-ca").await;
    // The clients' grace period is as long as a members' certificate lives before renewal:
    // 20 s here, 60 days by default.
    let extra = "  tls: {certificateLifetime: 40s, renewAtPercent: 50}\n  users:\n    - name: app\n      db: admin\n      \
                 roles: [{name: readWrite, db: orders}]\n";
    env.create_cluster(&cluster_yaml("vault", 3, extra)).await;
    let sim = SimMembers::follow(&env.client, &env.ns, "vault", None).await;
    ready_in(&env, "vault", TlsMode::Require).await;
    let old_ca = env.secret_text("vault-ca", "ca.crt").await.expect("the CA");
    let before: Vec<_> = env.pods("vault").await.iter().map(|p| (p.name_any(), p.uid())).collect();

    // Asked for by annotation, as after a leaked key (a scheduled renewal takes the same path).
    let patch = serde_json::json!({"metadata": {"annotations": {"mongo.operator.rs/renew-ca": "first"}}});
    env.api::<MongoCluster>()
        .patch("vault", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("annotate");

    // Sampled every 200 ms: what the application's connection Secret trusts, and whom the
    // members' certificate chains to.
    let started = Instant::now();
    let mut bundle_seen: Option<(String, Instant)> = None;
    let mut signed_by_new_at: Option<Instant> = None;
    let new_ca = loop {
        assert!(started.elapsed() < Duration::from_secs(240), "the CA renewal did not finish");
        let ca_secret = env.api::<Secret>().get("vault-ca").await.expect("CA Secret");
        let data = ca_secret.data.clone().unwrap_or_default();
        let text = |k: &str| data.get(k).map(|b| String::from_utf8_lossy(&b.0).into_owned());
        let app_ca = env.secret_text("vault-admin-app", "ca.crt").await.unwrap_or_default();
        if certificates_in(&app_ca) == 2 && bundle_seen.is_none() {
            bundle_seen = Some((app_ca.clone(), Instant::now()));
        }
        let signing = text("ca.crt").unwrap_or_default();
        let members_cert = env.secret_text("vault-tls", "tls.crt").await.unwrap_or_default();
        let now = time::OffsetDateTime::now_utc();
        if signing != old_ca && signed_by_new_at.is_none() {
            let member = "vault-0.vault-members.".to_string() + &env.ns + ".svc.cluster.local";
            if mongo_operator::certs::verify_chain(&signing, &members_cert, &member, now).is_ok() {
                signed_by_new_at = Some(Instant::now());
            }
        }
        let c = env.api::<MongoCluster>().get("vault").await.expect("cluster");
        let settled = tls_status(&c).is_some_and(|t| t.step.is_none() && t.served_certificate.is_some());
        if signing != old_ca && !data.contains_key("next-ca.crt") && !data.contains_key("retired-ca.crt") && settled {
            break signing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (bundle, bundle_at) = bundle_seen.expect("clients were given both CAs before the switch");
    let switched_at = signed_by_new_at.expect("the members' certificate was signed by the new CA");
    assert!(
        switched_at.duration_since(bundle_at) >= Duration::from_secs(19),
        "clients had {:?} with both CAs before the new one signed",
        switched_at.duration_since(bundle_at)
    );
    assert_eq!(certificates_in(&bundle), 2);
    assert!(bundle.contains(old_ca.trim_end()) && bundle.contains(new_ca.trim_end()));
    // The connection Secret now trusts the new CA alone; a client that took the bundle while
    // both were trusted still gets in, one that kept only the old CA is refused (it had the
    // grace period to take the bundle), and the new CA alone is enough.
    support::eventually("the connection Secret trusts the new CA only", Duration::from_secs(60), || async {
        (env.secret_text("vault-admin-app", "ca.crt").await? == new_ca).then_some(())
    })
    .await;
    hello(&sim, "vault-1", Some(support::members::write_ca("vault-bundle", &bundle))).await.expect("bundle");
    hello(&sim, "vault-1", Some(support::members::write_ca("vault-new-ca", &new_ca))).await.expect("new CA");
    let refused = hello(&sim, "vault-1", Some(support::members::write_ca("vault-old-ca", &old_ca))).await;
    assert!(refused.expect_err("the old CA alone").to_lowercase().contains("certificate"));
    for reason in ["CertificateAuthorityRenewing", "CertificateAuthoritySwitched", "CertificateAuthorityRenewed"] {
        env.recorded(reason, 1).await;
    }
    // The request is honoured once: no second renewal starts.
    let ca_secret = env.api::<Secret>().get("vault-ca").await.expect("CA Secret");
    assert_eq!(ca_secret.annotations().get("mongo.operator.rs/ca-renewal-honoured").map(String::as_str), Some("first"));
    assert_eq!(env.event_count("CertificateAuthorityRenewing").await, 1);
    let after: Vec<_> = env.pods("vault").await.iter().map(|p| (p.name_any(), p.uid())).collect();
    assert_eq!(before, after, "no Pod was restarted");
    env.finish().await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes control plane: run `make test`"]
async fn an_issuer_ref_gets_the_certificate_from_cert_manager_and_follows_its_renewals() {
    use support::cert_manager::{CaIssuer, install_crds, remove_crds};
    let env = Env::new("tls-cm").await;
    // Without cert-manager, the condition says what is missing; nothing else changes.
    remove_crds(&env.client).await;
    env.create_cluster(&cluster_yaml("mint", 3, "  tls: {issuerRef: {name: corp-ca, kind: ClusterIssuer}}\n")).await;
    let degraded = |want: &'static str| {
        let env = &env;
        async move {
            support::eventually(&format!("Degraded {want}"), READY_TIMEOUT, || async {
                let c = env.api::<MongoCluster>().get("mint").await.ok()?;
                let d = c.status.as_ref()?.conditions.iter().find(|x| x.type_ == "Degraded")?.clone();
                (d.reason == want).then_some(d.message)
            })
            .await
        }
    };
    let missing = degraded("CertManagerNotInstalled").await;
    assert!(missing.contains("cert-manager.io/v1"), "{missing}");

    // cert-manager's CRDs: the operator's Certificate must pass its schema. The operator looks
    // again every minute; asking for a reconcile is quicker.
    install_crds(&env.client).await;
    let patch = serde_json::json!({"metadata": {"annotations": {"mongo.operator.rs/reconcile-requested-at": "now"}}});
    env.api::<MongoCluster>()
        .patch("mint", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("annotate");
    let pending = degraded("TlsCertificatePending").await;
    assert!(pending.contains("Certificate mint-members") && pending.contains("mint-tls-issued"), "{pending}");
    let certificates: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &mongo_operator::build::cert_manager::certificate_resource(),
    );
    let certificate = certificates.get("mint-members").await.expect("the Certificate");
    let spec = &certificate.data["spec"];
    let member = format!("*.mint-members.{}.svc.cluster.local", env.ns);
    assert!(spec["dnsNames"].as_array().expect("dnsNames").iter().any(|n| n.as_str() == Some(member.as_str())));
    assert_eq!(spec["ipAddresses"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(spec["issuerRef"]["kind"], "ClusterIssuer");
    assert_eq!(spec["duration"], "2160h0m0s");

    // cert-manager issues it: the members start with it.
    let now = time::OffsetDateTime::now_utc();
    let corp = mongo_operator::certs::issue_ca("corp/ca", now, Duration::from_secs(86_400 * 365)).expect("CA");
    let issuer = CaIssuer::start(env.client.clone(), &env.ns, corp.clone());
    let sim = SimMembers::follow(&env.client, &env.ns, "mint", None).await;
    let c = ready_in(&env, "mint", TlsMode::Require).await;
    let issued = env.secret_text("mint-tls-issued", "tls.crt").await.expect("cert-manager's Secret");
    assert_eq!(env.secret_text("mint-tls", "tls.crt").await.as_ref(), Some(&issued));
    assert!(env.api::<Secret>().get_opt("mint-ca").await.expect("read").is_none(), "no CA of the operator's");
    hello(&sim, "mint-1", Some(support::members::write_ca("corp-ca", &corp.cert_pem))).await.expect("corp CA");
    let first = tls_status(&c).and_then(|t| t.served_certificate);
    let before: Vec<_> = env.pods("mint").await.iter().map(|p| (p.name_any(), p.uid())).collect();

    // cert-manager renews it: the operator follows at once and rotates it into every member.
    issuer.renew("mint-members").await;
    let renewed = support::eventually("the renewal presented by every member", Duration::from_secs(60), || async {
        let served = tls_status(&env.api::<MongoCluster>().get("mint").await.ok()?)?.served_certificate;
        (served.is_some() && served != first).then_some(served)
    })
    .await;
    let now_issued = env.secret_text("mint-tls-issued", "tls.crt").await.expect("renewed");
    assert_eq!(renewed, mongo_operator::mongo::handshake::fingerprint(&now_issued));
    let after: Vec<_> = env.pods("mint").await.iter().map(|p| (p.name_any(), p.uid())).collect();
    assert_eq!(before, after, "no Pod was restarted");
    drop(issuer);
    let client = env.client.clone();
    env.finish().await;
    remove_crds(&client).await;
}
