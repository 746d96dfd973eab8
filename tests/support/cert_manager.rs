//! cert-manager for the tests: its real CRDs (from its module, `e2e/tools.sh cert-manager-crds`),
//! so the API server validates the operator's `Certificate` against cert-manager's schema, and
//! a stand-in for its controller with a CA issuer (whose binary is in a module the Go proxy does
//! not serve): for each `Certificate` it writes the Secret cert-manager's CA issuer writes
//! (`kubernetes.io/tls` with `tls.crt`, `tls.key`, `ca.crt`, the `secretTemplate` labels, its
//! `cert-manager.io/*` annotations) for the `dnsNames`, `ipAddresses` and `duration` asked, and
//! marks the `Certificate` Ready. See docs/testing.md for what this leaves out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mongo_operator::build::cert_manager::certificate_resource;
use mongo_operator::certs::Issued;
use tokio::sync::Mutex;

/// cert-manager's CRDs the tests install: (file, CRD name).
fn crds() -> Vec<(String, String)> {
    ["certificates", "issuers", "clusterissuers"]
        .map(|k| (format!("cert-manager.io_{k}.yaml"), format!("{k}.cert-manager.io")))
        .to_vec()
}

/// Installs cert-manager's CRDs and waits until they are served.
pub async fn install_crds(client: &Client) {
    super::crds_from_tools::install(client, "cert-manager-crds", &crds()).await;
}

/// Removes cert-manager's CRDs (and so every object of theirs).
pub async fn remove_crds(client: &Client) {
    super::crds_from_tools::remove(client, &crds()).await;
}

/// The CA issuer stand-in, issuing from `ca` in namespace `ns` until dropped.
pub struct CaIssuer {
    task: tokio::task::JoinHandle<()>,
    renew: Arc<Mutex<Vec<String>>>,
}

impl CaIssuer {
    pub fn start(client: Client, ns: &str, ca: Issued) -> CaIssuer {
        let renew: Arc<Mutex<Vec<String>>> = Arc::default();
        let asked = renew.clone();
        let ns = ns.to_string();
        let task = tokio::spawn(async move {
            let certificates: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &certificate_resource());
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
            loop {
                for c in certificates.list(&Default::default()).await.map(|l| l.items).unwrap_or_default() {
                    let name = c.name_any();
                    let forced = asked.lock().await.contains(&name);
                    let Some(secret_name) = c.data["spec"]["secretName"].as_str() else { continue };
                    let exists = secrets.get_opt(secret_name).await.ok().flatten().is_some();
                    if exists && !forced {
                        continue;
                    }
                    let secret = issue(&c, secret_name, &ca);
                    let params = PatchParams::apply("cert-manager-certificates-issuing").force();
                    if secrets.patch(secret_name, &params, &Patch::Apply(&secret)).await.is_ok() {
                        asked.lock().await.retain(|n| *n != name);
                        let status = serde_json::json!({
                            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                                "message": "Certificate is up to date and has not expired"}]}
                        });
                        let params = PatchParams::apply("cert-manager-certificates-readiness").force();
                        let _ = certificates.patch_status(&name, &params, &Patch::Apply(&status)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        CaIssuer { task, renew }
    }

    /// Issues `certificate` again now, as cert-manager does at its renewal time.
    pub async fn renew(&self, certificate: &str) {
        self.renew.lock().await.push(certificate.to_string());
    }
}

impl Drop for CaIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Go duration ("2160h0m0s") in seconds: hours, minutes and seconds are all this needs.
fn go_seconds(text: &str) -> u64 {
    let (mut total, mut number) = (0, 0);
    for ch in text.chars() {
        match ch {
            '0'..='9' => number = number * 10 + u64::from(ch as u8 - b'0'),
            'h' => (total, number) = (total + number * 3600, 0),
            'm' => (total, number) = (total + number * 60, 0),
            's' => (total, number) = (total + number, 0),
            _ => panic!("unexpected duration {text}"),
        }
    }
    total
}

/// The Secret cert-manager's CA issuer writes for `certificate`.
fn issue(certificate: &DynamicObject, secret_name: &str, ca: &Issued) -> Secret {
    let spec = &certificate.data["spec"];
    let strings = |key: &str| -> Vec<String> {
        spec[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let names: Vec<String> = strings("dnsNames").into_iter().chain(strings("ipAddresses")).collect();
    let life = spec["duration"].as_str().map_or(90 * 24 * 3600, go_seconds);
    let now = time::OffsetDateTime::now_utc();
    let unit = spec["subject"]["organizationalUnits"][0].as_str().unwrap_or("cert-manager").to_string();
    let cert = mongo_operator::certs::issue_server(ca, &unit, &names, now, Duration::from_secs(life)).expect("issue");
    let labels: BTreeMap<String, String> =
        serde_json::from_value(spec["secretTemplate"]["labels"].clone()).unwrap_or_default();
    let annotations = BTreeMap::from([
        ("cert-manager.io/certificate-name".to_string(), certificate.name_any()),
        ("cert-manager.io/issuer-name".to_string(), spec["issuerRef"]["name"].as_str().unwrap_or_default().into()),
        ("cert-manager.io/issuer-kind".to_string(), spec["issuerRef"]["kind"].as_str().unwrap_or_default().into()),
    ]);
    let data = [("tls.crt", &cert.cert_pem), ("tls.key", &cert.key_pem), ("ca.crt", &ca.cert_pem)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name.into()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}
