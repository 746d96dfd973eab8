//! The kubelet's part for backup and restore Pods on kwok's fake nodes: runs the real
//! `mongo-operator backup` or `restore` each Pod asks for, with the Pod's plan and its
//! projected secret files read from their Secrets, then writes the Pod's status as a kubelet
//! would (phase, exit code and the termination message the process wrote). One change to the
//! plan: the source (backup) or target (restore) is a FerretDB, because the simulated members
//! hold no data; backups run without `--oplog`, which FerretDB lacks.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use mongo_operator::backup::plan::{BackupPlan, RestorePlan, Source};

use super::servers::tool_dir;

pub struct JobRunner {
    task: tokio::task::JoinHandle<()>,
    held: Arc<AtomicBool>,
    /// Pods run so far, with their exit codes.
    pub runs: Arc<Mutex<Vec<(String, i32)>>>,
}

impl Drop for JobRunner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JobRunner {
    /// Runs backup Pods against `source_uri`.
    pub fn start(client: Client, ns: &str, source_uri: String) -> JobRunner {
        JobRunner::with_restore_target(client, ns, source_uri, None)
    }

    /// Also runs restore Pods, into `restore_uri`.
    pub fn with_restore_target(client: Client, ns: &str, source_uri: String, restore_uri: Option<String>) -> JobRunner {
        let held = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(Mutex::new(Vec::new()));
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let config = watcher::Config::default().labels("app.kubernetes.io/component in (backup,restore)");
        let (h, r) = (held.clone(), runs.clone());
        let task = tokio::spawn(async move {
            let started: Arc<Mutex<BTreeSet<String>>> = Arc::default();
            let mut events = watcher(pods.clone(), config).default_backoff().touched_objects().boxed();
            while let Some(event) = events.next().await {
                let Ok(pod) = event else { continue };
                let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if !running || pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                if !started.lock().unwrap().insert(pod.name_any()) {
                    continue;
                }
                let (pods, client, h, r) = (pods.clone(), client.clone(), h.clone(), r.clone());
                let (source, restore) = (source_uri.clone(), restore_uri.clone());
                tokio::spawn(async move {
                    while h.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    let code = run_pod(&client, &pods, &pod, &source, restore.as_deref()).await;
                    r.lock().unwrap().push((pod.name_any(), code));
                });
            }
        });
        JobRunner { task, held, runs }
    }

    /// Pods wait (as if their process were slow) until [`JobRunner::release`].
    pub fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
    }
}

async fn run_pod(client: &Client, pods: &Api<Pod>, pod: &Pod, source_uri: &str, restore_uri: Option<&str>) -> i32 {
    let name = pod.name_any();
    let spec = pod.spec.clone().expect("pod spec");
    let container = spec.containers[0].clone();
    let plan_json = container
        .env
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "MONGO_OPERATOR_PLAN")
        .and_then(|e| e.value)
        .expect("the Pod carries a plan");
    let subcommand = container.name.clone();
    let plan_json = if subcommand == "restore" {
        let mut plan: RestorePlan = serde_json::from_str(&plan_json).expect("the restore plan parses");
        let uri = restore_uri.expect("a restore target for restore Pods");
        plan.target = Source { uri: uri.to_string(), username: None };
        serde_json::to_string(&plan).expect("json")
    } else {
        let mut plan: BackupPlan = serde_json::from_str(&plan_json).expect("the plan parses");
        plan.source = Source { uri: source_uri.to_string(), username: None };
        plan.oplog = false;
        serde_json::to_string(&plan).expect("json")
    };

    // Materialise the projected Secret keys exactly where the Pod would see them.
    let dir = std::env::temp_dir().join(format!("mongo-operator-pod-{}-{name}", std::process::id()));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    for volume in spec.volumes.unwrap_or_default() {
        let Some(projected) = volume.projected else { continue };
        for source in projected.sources.unwrap_or_default() {
            let Some(projection) = source.secret else { continue };
            let secret = secrets.get(&projection.name).await.expect("a projected Secret exists");
            for item in projection.items.unwrap_or_default() {
                let value = secret.data.as_ref().and_then(|d| d.get(&item.key)).expect("a projected key exists");
                let path = dir.join(&item.path);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
                std::fs::write(&path, &value.0).expect("write secret file");
            }
        }
    }
    let result = dir.join("termination-log");
    let tools = tool_dir("mongotools");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mongo-operator"));
    command
        .args([subcommand.as_str(), "--result-file"])
        .arg(&result)
        .env("MONGO_OPERATOR_PLAN", plan_json)
        .env("MONGO_OPERATOR_SECRETS_DIR", &dir)
        .env("MONGODUMP", tools.join("mongodump"))
        .env("MONGORESTORE", tools.join("mongorestore"))
        .env("MONGO_OPERATOR_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let status = tokio::task::spawn_blocking(move || command.status()).await.expect("join").expect("run the process");
    let code = status.code().unwrap_or(137);
    let message = std::fs::read_to_string(&result).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = serde_json::json!({
        "status": {
            "phase": if code == 0 { "Succeeded" } else { "Failed" },
            "containerStatuses": [{
                "name": container.name,
                "image": container.image,
                "imageID": "",
                "ready": false,
                "restartCount": 0,
                "started": false,
                "state": { "terminated": {
                    "exitCode": code,
                    "reason": if code == 0 { "Completed" } else { "Error" },
                    "message": message,
                    "startedAt": now, "finishedAt": now,
                }},
            }],
        }
    });
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("write the Pod's status");
    code
}

/// Where the runner's mongo-tools are, for tests that also restore.
pub fn mongorestore() -> PathBuf {
    tool_dir("mongotools").join("mongorestore")
}
