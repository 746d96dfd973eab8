//! `kubectl mongo report NAME`: a support bundle for an incident report, in one `.tar.gz`: the
//! cluster, its backups, every object the operator made for it, the Events about them, the
//! members' logs and the operator's, each read with the user's own rights (what may not be
//! read is said in the bundle, not left out silently).
//!
//! No secret value leaves: Secrets keep their names and keys but not their values, and before
//! anything is written every file is scanned for every value of the cluster's Secrets (as
//! text, base64 and percent-encoded, as in a connection string) and each one found is
//! replaced. The bundle says how many were.

use std::collections::BTreeSet;
use std::io::Write;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::common::{PluginError, get};
use crate::api::{MongoBackup, MongoCluster, NetworkPolicyAttachment};

/// How many lines of each container's log go into the bundle.
const LOG_LINES: i64 = 5000;
/// What replaces a secret value.
pub const REDACTED: &str = "<redacted>";
/// Secret values shorter than this are not searched for (a "1" or "true" would match
/// everywhere and hide nothing).
const SHORTEST_SECRET: usize = 6;

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub text: String,
}

/// Every form a secret value may take in a file: as is, base64 (as in a Secret's `data`) and
/// percent-encoded (as in a connection string). Longest first, so that a value containing
/// another is replaced whole.
pub fn forms(values: &[Vec<u8>]) -> Vec<String> {
    use base64::Engine;
    let mut out = BTreeSet::new();
    for value in values {
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        out.insert(b64);
        if let Ok(text) = std::str::from_utf8(value) {
            for line in std::iter::once(text).chain(text.lines()) {
                let line = line.trim();
                out.insert(line.to_string());
                let encoded =
                    percent_encoding::utf8_percent_encode(line, percent_encoding::NON_ALPHANUMERIC).to_string();
                out.insert(encoded);
            }
        }
    }
    let mut forms: Vec<String> = out.into_iter().filter(|f| f.len() >= SHORTEST_SECRET).collect();
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

/// Replaces every form of every secret value in every entry; returns how many were replaced.
pub fn redact(entries: &mut [Entry], forms: &[String]) -> usize {
    let mut count = 0;
    for entry in entries.iter_mut() {
        for form in forms {
            let found = entry.text.matches(form.as_str()).count();
            if found > 0 {
                count += found;
                entry.text = entry.text.replace(form.as_str(), REDACTED);
            }
        }
    }
    count
}

/// A Secret as the bundle shows it: its metadata (without the last applied configuration,
/// which may hold the data) and its keys, each with its value's length only.
pub fn redacted_secret(secret: &Secret) -> serde_json::Value {
    let mut meta = secret.metadata.clone();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    let keys: serde_json::Map<String, serde_json::Value> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(format!("{REDACTED} ({} bytes)", v.0.len()))))
        .chain(secret.string_data.iter().flatten().map(|(k, _)| (k.clone(), REDACTED.into())))
        .collect();
    serde_json::json!({ "metadata": meta, "type": secret.type_, "data": keys })
}

/// The bundle as a gzip-compressed tar archive.
pub fn archive(root: &str, entries: &[Entry]) -> Result<Vec<u8>, PluginError> {
    let io = |source| PluginError::Io { what: "writing the bundle".into(), source };
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(entry.text.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(now);
        tar.append_data(&mut header, format!("{root}/{}", entry.path), entry.text.as_bytes()).map_err(io)?;
    }
    let mut gz = tar.into_inner().map_err(io)?;
    gz.flush().map_err(io)?;
    gz.finish().map_err(io)
}

fn yaml<T: Serialize>(value: &T) -> String {
    serde_yaml::to_string(value).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
}

/// Objects of one kind with the cluster's instance label, without their managed fields; or why
/// they could not be listed.
async fn owned<K>(client: &Client, namespace: &str, cluster: &str, notes: &mut Vec<String>) -> Vec<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let selector = format!("app.kubernetes.io/instance={cluster}");
    match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list
            .items
            .into_iter()
            .map(|mut o| {
                o.meta_mut().managed_fields = None;
                o
            })
            .collect(),
        Err(e) => {
            notes.push(format!("{}: not included: {e}", K::plural(&())));
            Vec::new()
        }
    }
}

/// What went into the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub redacted: usize,
    pub notes: Vec<String>,
}

/// Gathers the bundle's files, redacted.
pub async fn gather(client: &Client, namespace: &str, name: &str) -> Result<(Vec<Entry>, Summary), PluginError> {
    let mut cluster: MongoCluster = get(client, namespace, name).await?;
    cluster.metadata.managed_fields = None;
    let mut notes = Vec::new();
    let mut entries = vec![Entry { path: "mongocluster.yaml".into(), text: yaml(&cluster) }];

    let backups: Vec<MongoBackup> =
        match Api::<MongoBackup>::namespaced(client.clone(), namespace).list(&ListParams::default()).await {
            Ok(l) => l.items.into_iter().filter(|b| b.spec.cluster_ref.name == name).collect(),
            Err(e) => {
                notes.push(format!("mongobackups: not included: {e}"));
                Vec::new()
            }
        };
    entries.push(Entry { path: "mongobackups.yaml".into(), text: yaml(&backups) });
    let attachments: Vec<NetworkPolicyAttachment> = match Api::<NetworkPolicyAttachment>::namespaced(
        client.clone(),
        namespace,
    )
    .list(&ListParams::default())
    .await
    {
        Ok(l) => l.items,
        Err(e) => {
            notes.push(format!("networkpolicyattachments: not included: {e}"));
            Vec::new()
        }
    };
    entries.push(Entry { path: "networkpolicyattachments.yaml".into(), text: yaml(&attachments) });

    let pods: Vec<Pod> = owned(client, namespace, name, &mut notes).await;
    let statefulsets: Vec<StatefulSet> = owned(client, namespace, name, &mut notes).await;
    let services: Vec<Service> = owned(client, namespace, name, &mut notes).await;
    let config_maps: Vec<ConfigMap> = owned(client, namespace, name, &mut notes).await;
    let budgets: Vec<PodDisruptionBudget> = owned(client, namespace, name, &mut notes).await;
    let policies: Vec<NetworkPolicy> = owned(client, namespace, name, &mut notes).await;
    let jobs: Vec<Job> = owned(client, namespace, name, &mut notes).await;
    let claims: Vec<PersistentVolumeClaim> = owned(client, namespace, name, &mut notes).await;
    let secrets: Vec<Secret> = owned(client, namespace, name, &mut notes).await;
    entries.push(Entry { path: "pods.yaml".into(), text: yaml(&pods) });
    entries.push(Entry { path: "statefulsets.yaml".into(), text: yaml(&statefulsets) });
    entries.push(Entry { path: "services.yaml".into(), text: yaml(&services) });
    entries.push(Entry { path: "configmaps.yaml".into(), text: yaml(&config_maps) });
    entries.push(Entry { path: "poddisruptionbudgets.yaml".into(), text: yaml(&budgets) });
    entries.push(Entry { path: "networkpolicies.yaml".into(), text: yaml(&policies) });
    entries.push(Entry { path: "jobs.yaml".into(), text: yaml(&jobs) });
    entries.push(Entry { path: "persistentvolumeclaims.yaml".into(), text: yaml(&claims) });
    let shown: Vec<serde_json::Value> = secrets.iter().map(redacted_secret).collect();
    entries.push(Entry { path: "secrets.yaml".into(), text: yaml(&shown) });

    // Events about the cluster, its backups and its objects.
    let mut involved: BTreeSet<String> = BTreeSet::from([name.to_string()]);
    involved.extend(backups.iter().map(ResourceExt::name_any));
    involved.extend(pods.iter().map(ResourceExt::name_any));
    involved.extend(statefulsets.iter().map(ResourceExt::name_any));
    involved.extend(jobs.iter().map(ResourceExt::name_any));
    involved.extend(claims.iter().map(ResourceExt::name_any));
    match Api::<Event>::namespaced(client.clone(), namespace).list(&ListParams::default()).await {
        Ok(list) => {
            let mut events: Vec<&Event> = list
                .items
                .iter()
                .filter(|e| e.involved_object.name.as_ref().is_some_and(|n| involved.contains(n)))
                .collect();
            events.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)));
            let text: String = events
                .iter()
                .map(|e| {
                    let when = e.last_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
                    let o = &e.involved_object;
                    format!(
                        "{when} {} {} {}/{} x{}: {}\n",
                        e.type_.as_deref().unwrap_or_default(),
                        e.reason.as_deref().unwrap_or_default(),
                        o.kind.as_deref().unwrap_or_default(),
                        o.name.as_deref().unwrap_or_default(),
                        e.count.unwrap_or(1),
                        e.message.as_deref().unwrap_or_default()
                    )
                })
                .collect();
            entries.push(Entry { path: "events.txt".into(), text });
        }
        Err(e) => notes.push(format!("events: not included: {e}")),
    }

    // The members' logs, then the operator's.
    let mut members: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.labels().get("app.kubernetes.io/component").map(String::as_str) == Some("database"))
        .collect();
    members.sort_by_key(|p| p.name_any());
    for pod in members {
        logs_of(client, namespace, pod, &mut entries, &mut notes).await;
    }
    let operators: Api<Pod> = Api::all(client.clone());
    match operators.list(&ListParams::default().labels("app.kubernetes.io/name=mongo-operator")).await {
        Ok(list) if list.items.is_empty() => {
            notes.push("operator logs: no operator Pod found (app.kubernetes.io/name=mongo-operator)".into())
        }
        Ok(list) => {
            for pod in &list.items {
                let ns = pod.namespace().unwrap_or_default();
                logs_of(client, &ns, pod, &mut entries, &mut notes).await;
            }
        }
        Err(e) => notes.push(format!("operator logs: not included (listing the operator's Pods): {e}")),
    }

    // Every value of the cluster's Secrets, in every form, out of every file.
    let values: Vec<Vec<u8>> = secrets.iter().flat_map(|s| s.data.iter().flatten().map(|(_, v)| v.0.clone())).collect();
    let redacted = redact(&mut entries, &forms(&values));
    let readme = readme(namespace, name, &entries, redacted, &notes);
    entries.insert(0, Entry { path: "README.txt".into(), text: readme });
    let summary = Summary { files: entries.len(), redacted, notes };
    Ok((entries, summary))
}

async fn logs_of(client: &Client, namespace: &str, pod: &Pod, entries: &mut Vec<Entry>, notes: &mut Vec<String>) {
    let name = pod.name_any();
    for container in super::logs::containers(pod) {
        let path = format!("logs/{namespace}/{name}/{container}.log");
        match super::logs::read(client, namespace, &name, &container, Some(LOG_LINES)).await {
            Ok(text) => entries.push(Entry { path, text }),
            Err(e) => notes.push(format!("{path}: not included: {e}")),
        }
    }
}

fn readme(namespace: &str, name: &str, entries: &[Entry], redacted: usize, notes: &[String]) -> String {
    let mut out = format!(
        "Support bundle of MongoCluster {namespace}/{name}, made by kubectl-mongo {} at {}.\n\n\
         Secret values are not in it: Secrets show their keys and the length of each value, and every file\n\
         was searched for every value of the cluster's Secrets (as text, base64 and percent-encoded):\n\
         {redacted} occurrence(s) were replaced by \"{REDACTED}\".\n\nFiles:\n",
        env!("CARGO_PKG_VERSION"),
        k8s_openapi::jiff::Timestamp::now()
    );
    for e in entries {
        out.push_str(&format!("  {} ({} bytes)\n", e.path, e.text.len()));
    }
    if !notes.is_empty() {
        out.push_str("\nNot included:\n");
        for n in notes {
            out.push_str(&format!("  {n}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn every_form_of_a_secret_value_is_replaced_and_short_values_are_left() {
        let password = b"s3cr3t/p@ss".to_vec();
        let forms = forms(&[password, b"yes".to_vec()]);
        let mut entries = vec![
            Entry { path: "a".into(), text: "password: s3cr3t/p@ss".into() },
            Entry { path: "b".into(), text: "mongodb://app:s3cr3t%2Fp%40ss@h/db and czNjcjN0L3BAc3M= yes".into() },
        ];
        assert_eq!(redact(&mut entries, &forms), 3);
        assert_eq!(entries[0].text, "password: <redacted>");
        assert_eq!(entries[1].text, "mongodb://app:<redacted>@h/db and <redacted> yes");
    }

    #[test]
    fn a_secret_keeps_its_keys_and_loses_its_values_and_last_applied_configuration() {
        let mut secret = Secret::default();
        secret.metadata.name = Some("orders-app".into());
        secret.metadata.annotations = Some(
            [("kubectl.kubernetes.io/last-applied-configuration".to_string(), "{\"data\":{}}".to_string())].into(),
        );
        secret.data = Some([("password".to_string(), ByteString(b"hunter22".to_vec()))].into());
        let shown = serde_json::to_string(&redacted_secret(&secret)).expect("json");
        assert!(shown.contains("\"password\":\"<redacted> (8 bytes)\""), "{shown}");
        assert!(!shown.contains("hunter22") && !shown.contains("last-applied"), "{shown}");
    }

    #[test]
    fn the_archive_holds_every_entry_under_its_root() {
        let entries = vec![Entry { path: "README.txt".into(), text: "hello".into() }];
        let bytes = archive("orders-report", &entries).expect("archive");
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let names: Vec<String> = tar
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry").path().expect("path").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["orders-report/README.txt"]);
    }
}
