//! The kubelet's part for backup, restore and prune Pods on kwok's fake nodes: runs the real
//! `mongo-operator backup`, `restore` or `prune` each Pod asks for, with the Pod's plan exactly as the
//! operator wrote it and its projected secret files read from their Secrets, then writes the
//! Pod's status as a kubelet would (phase, exit code and the termination message the process
//! wrote).
//!
//! The plans name members by their cluster DNS names, which do not resolve on this machine.
//! The process runs in a mount namespace of its own (`unshare --mount`) where `/etc/hosts`
//! maps every member Pod of the namespace to its IP, as the cluster's DNS would: the only
//! stand-in is the name service. What answers at those IPs is the simulated members, in front
//! of a FerretDB holding each cluster's data (`support::members`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::data_set::Throwaway;
use super::members::DOMAIN;
use super::servers::tool_dir;
use mongo_operator::build::verify_job::{THROWAWAY_CONTAINER, THROWAWAY_HOST, THROWAWAY_SET};

pub struct JobRunner {
    task: tokio::task::JoinHandle<()>,
    held: Arc<Mutex<Held>>,
    /// Pods run so far, with their exit codes.
    pub runs: Arc<Mutex<Vec<(String, i32)>>>,
}

impl Drop for JobRunner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JobRunner {
    /// Runs the namespace's backup and restore Pods.
    pub fn start(client: Client, ns: &str) -> JobRunner {
        let held = Arc::new(Mutex::new(Held::Nothing));
        let runs = Arc::new(Mutex::new(Vec::new()));
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let config = watcher::Config::default()
            .labels("app.kubernetes.io/component in (backup,restore,prune,verify,oplog-archiver)");
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
                let component = pod.labels().get("app.kubernetes.io/component").cloned().unwrap_or_default();
                tokio::spawn(async move {
                    while h.lock().unwrap().holds(&component) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    let code = run_pod(&client, &pods, &pod).await;
                    r.lock().unwrap().push((pod.name_any(), code));
                });
            }
        });
        JobRunner { task, held, runs }
    }

    /// Pods wait (as if their process were slow) until [`JobRunner::release`].
    pub fn hold(&self) {
        *self.held.lock().unwrap() = Held::Everything;
    }

    /// Pods of one component (`app.kubernetes.io/component`, e.g. `verify`) wait until
    /// [`JobRunner::release`]; the others run. Holding every Pod once one Job is seen would race
    /// with the Pod of an earlier step that kwok has not marked Running yet.
    pub fn hold_component(&self, component: &'static str) {
        *self.held.lock().unwrap() = Held::Component(component);
    }

    pub fn release(&self) {
        *self.held.lock().unwrap() = Held::Nothing;
    }
}

/// Which Pods [`JobRunner`] keeps waiting.
enum Held {
    Nothing,
    Everything,
    Component(&'static str),
}

impl Held {
    fn holds(&self, component: &str) -> bool {
        match self {
            Held::Nothing => false,
            Held::Everything => true,
            Held::Component(held) => *held == component,
        }
    }
}

/// Every Pod has a loopback of its own; the Pods run here share the machine's, where one
/// throwaway at a time can have port 27017.
static LOOPBACK_27017: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The throwaway mongod of a verification Pod at [`THROWAWAY_HOST`], once the port is free
/// (another test process may hold it for a while).
async fn throwaway_on_the_pods_loopback() -> (tokio::sync::MutexGuard<'static, ()>, Throwaway) {
    let guard = LOOPBACK_27017.lock().await;
    for _ in 0..600 {
        if let Ok(throwaway) = Throwaway::start_at(THROWAWAY_SET, THROWAWAY_HOST).await {
            return (guard, throwaway);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{THROWAWAY_HOST} stayed taken for 2 minutes");
}

/// `/etc/hosts` lines for every member Pod of `pods`' namespace: what the cluster's DNS answers
/// for `<pod>.<cluster>-members.<namespace>.svc.cluster.local`.
pub async fn member_hosts(pods: &Api<Pod>, ns: &str) -> String {
    let members = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=database"))
        .await
        .expect("list member Pods");
    let mut hosts = String::from("127.0.0.1 localhost\n");
    for pod in members.items {
        let (Some(ip), Some(cluster)) = (
            pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
            pod.labels().get("app.kubernetes.io/instance").cloned(),
        ) else {
            continue;
        };
        hosts.push_str(&format!("{ip} {}.{cluster}-members.{ns}.svc.{DOMAIN}\n", pod.name_any()));
    }
    hosts
}

/// A command that runs `program` with `/etc/hosts` replaced by `hosts_file`, for it alone.
pub fn with_hosts(hosts_file: &std::path::Path, program: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\""])
        .arg(hosts_file)
        .arg(program);
    command
}

/// A process that ends with its owner: a long-running Pod's process must not outlive the
/// test that started it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run_pod(client: &Client, pods: &Api<Pod>, pod: &Pod) -> i32 {
    let name = pod.name_any();
    let ns = pod.namespace().unwrap_or_default();
    let spec = pod.spec.clone().expect("pod spec");
    let container = spec.containers[0].clone();
    let plan_json = container
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "MONGO_OPERATOR_PLAN")
        .and_then(|e| e.value)
        .expect("the Pod carries a plan");
    let subcommand = container.name.clone();

    // Materialise the projected Secret keys exactly where the Pod would see them.
    let dir = std::env::temp_dir().join(format!("mongo-operator-pod-{}-{name}", std::process::id()));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
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
    let hosts = dir.join("etc-hosts");
    std::fs::write(&hosts, member_hosts(pods, &ns).await).expect("write the hosts file");
    let result = dir.join("termination-log");
    let tools = tool_dir("mongotools");
    let mut command = with_hosts(&hosts, &PathBuf::from(env!("CARGO_BIN_EXE_mongo-operator")));
    command
        .args([subcommand.as_str(), "--result-file"])
        .arg(&result)
        .env("MONGO_OPERATOR_PLAN", plan_json)
        .env("MONGO_OPERATOR_SECRETS_DIR", &dir)
        .env("MONGODUMP", tools.join("mongodump"))
        .env("MONGORESTORE", tools.join("mongorestore"))
        .env("MONGO_OPERATOR_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(
            std::fs::File::create(std::env::temp_dir().join(format!("mongo-operator-pod-{name}.log"))).expect("log"),
        ));
    // A verification Pod's throwaway mongod (its native sidecar), on the Pod's loopback:
    // simulated, in front of a FerretDB, as the Pod's kubelet would start the real one.
    let throwaway = match spec.init_containers.iter().flatten().any(|c| c.name == THROWAWAY_CONTAINER) {
        true => Some(throwaway_on_the_pods_loopback().await),
        false => None,
    };
    // The oplog archiver runs until its Pod goes (its Deployment is removed or replaced);
    // kwok keeps the Pod Running and Ready meanwhile, as a kubelet would.
    if subcommand == "archive-oplog" {
        // Where it starts and what it archives is logged at info. Its status port is on the
        // Pod's IP (the downward API's `status.podIP`, as the kubelet would give it), which the
        // operator reads its report from.
        command.env("MONGO_OPERATOR_LOG_LEVEL", "info");
        let declared = container.env.iter().flatten().any(|e| {
            e.name == "POD_IP"
                && e.value_from
                    .as_ref()
                    .and_then(|v| v.field_ref.as_ref())
                    .is_some_and(|f| f.field_path == "status.podIP")
        });
        if declared {
            let current = pods.get(&name).await.expect("the archiver's Pod");
            if let Some(ip) = current.status.and_then(|s| s.pod_ip) {
                command.env("POD_IP", ip);
            }
        }
        // Killed when its Pod goes, or with this task when the test ends first.
        let child = KillOnDrop(command.spawn().expect("start the archiver"));
        while pods.get_opt(&name).await.ok().flatten().is_some_and(|p| p.metadata.deletion_timestamp.is_none()) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        drop(child);
        let _ = std::fs::remove_dir_all(&dir);
        return 0;
    }
    let status = tokio::task::spawn_blocking(move || command.status()).await.expect("join").expect("run the process");
    drop(throwaway);
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
