//! Stand-ins for mongod on the local control plane: simulated members that follow a cluster's
//! kwok Pods, listening on each Pod's IP (kwok hands out 127.100.x.y addresses), as a real
//! mongod would in its Pod. A Pod that goes away takes its member down; a Pod that comes back
//! (with the same volume) brings the member back, with its data, on the new IP, running the
//! release its image's tag names (`mongo:7.0.12` runs 7.0.12).
//!
//! Where a real container would crash-loop, the follower plays the kubelet: a Pod whose image
//! names no release (`mongo:does-not-exist`) never starts mongod, and a member whose binary
//! refuses the set's featureCompatibilityVersion stops at startup (as mongod exits with code
//! 62); either way the Pod is marked Running but not ready, with its container waiting in
//! CrashLoopBackOff, which kwok then leaves alone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use mongo_replset_sim::tls::{MemberTls, TlsMode};
use mongo_replset_sim::{CommandLog, Options, Sim};

use super::eventually;

pub const DOMAIN: &str = "cluster.local";

/// Simulated members following one MongoCluster's Pods.
pub struct SimMembers {
    pub sim: Arc<Sim>,
    certificates: tokio::task::JoinHandle<()>,
    client: Client,
    cluster: String,
    namespace: String,
    /// Pod name → the IP its member listens on, or None while the Pod is away.
    pub listening: Arc<Mutex<BTreeMap<String, Option<String>>>>,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for SimMembers {
    fn drop(&mut self) {
        self.follower.abort();
        self.certificates.abort();
    }
}

/// Options with short timings, so elections and catch-up take a second rather than ten.
pub fn fast_options(set_name: &str, key_file: &str) -> Options {
    Options {
        set_name: set_name.into(),
        key_file: key_file.into(),
        election_timeout: Duration::from_millis(1000),
        heartbeat_interval: Duration::from_millis(100),
        initial_sync: Duration::from_millis(500),
        noop_interval: Duration::from_millis(500),
        stepdown_handoff: Duration::from_millis(200),
        ..Options::default()
    }
}

/// How long after a Secret changes a member's mounted copy of it does: 0.5 to 3 s, fixed per
/// member (its node's kubelet).
fn volume_sync_delay(member: &str) -> Duration {
    let spread = member.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 2_500;
    Duration::from_millis(500 + spread)
}

impl SimMembers {
    /// Waits for the operator to write the cluster's internal Secret (the keyFile), then
    /// follows the cluster's Pods. `log` records every command the members receive.
    pub async fn follow(client: &Client, ns: &str, cluster: &str, log: Option<CommandLog>) -> SimMembers {
        SimMembers::follow_with(client, ns, cluster, log, None).await
    }

    /// Like [`SimMembers::follow`], for a set that keeps its data in the FerretDB at `data`.
    pub async fn holding_data(client: &Client, ns: &str, cluster: &str, data: &str) -> SimMembers {
        SimMembers::follow_with(client, ns, cluster, None, Some(data.to_string())).await
    }

    /// Like [`SimMembers::holding_data`], without the simulator's periodic no-ops in FerretDB's
    /// oplog: written with a timestamp of the simulator's choosing, they can leave that oplog
    /// out of timestamp order (docs/testing.md), which the oplog archiver rightly refuses.
    pub async fn holding_data_in_order(client: &Client, ns: &str, cluster: &str, data: &str) -> SimMembers {
        SimMembers::follow_configured(client, ns, cluster, None, Some(data.to_string()), |o| {
            o.noop_interval = Duration::from_secs(3600)
        })
        .await
    }

    async fn follow_with(
        client: &Client,
        ns: &str,
        cluster: &str,
        log: Option<CommandLog>,
        data: Option<String>,
    ) -> SimMembers {
        SimMembers::follow_configured(client, ns, cluster, log, data, |_| {}).await
    }

    async fn follow_configured(
        client: &Client,
        ns: &str,
        cluster: &str,
        log: Option<CommandLog>,
        data: Option<String>,
        configure: impl FnOnce(&mut Options),
    ) -> SimMembers {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let name = format!("{cluster}-internal");
        let key_file = eventually("the internal Secret", Duration::from_secs(60), || {
            let secrets = secrets.clone();
            let name = name.clone();
            async move {
                let s = secrets.get_opt(&name).await.ok()??;
                let v = s.data?.get("keyfile")?.0.clone();
                String::from_utf8(v).ok()
            }
        })
        .await;
        let mut options = Options { data, ..fast_options(cluster, &key_file) };
        configure(&mut options);
        let sim = Sim::start(options, log);
        let listening: Arc<Mutex<BTreeMap<String, Option<String>>>> = Arc::new(Mutex::new(BTreeMap::new()));
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let config = watcher::Config::default()
            .labels(&format!("app.kubernetes.io/instance={cluster},app.kubernetes.io/component=database"));
        // The kubelet's part for the members' TLS Secret: a change reaches the mounted files of
        // every running member, each in its own time, as each node's kubelet syncs its Pods'
        // volumes on its own (within about a minute on a real node; within three seconds
        // here), always the newest content.
        let certificates = {
            let (s, l) = (sim.clone(), listening.clone());
            let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
            let config = watcher::Config::default().fields(&format!("metadata.name={cluster}-tls"));
            let newest: Arc<Mutex<String>> = Arc::default();
            tokio::spawn(async move {
                let mut events = watcher(secrets, config).default_backoff().touched_objects().boxed();
                while let Some(event) = events.next().await {
                    let Ok(secret) = event else { continue };
                    let Some(pem) = secret.data.and_then(|d| String::from_utf8(d.get("tls.pem")?.0.clone()).ok())
                    else {
                        continue;
                    };
                    *newest.lock().unwrap() = pem;
                    let running: Vec<String> =
                        l.lock().unwrap().iter().filter(|(_, ip)| ip.is_some()).map(|(n, _)| n.clone()).collect();
                    for name in running {
                        let (s, newest) = (s.clone(), newest.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(volume_sync_delay(&name)).await;
                            let pem = newest.lock().unwrap().clone();
                            s.set_tls_file(&name, &pem);
                        });
                    }
                }
            })
        };
        let (s, l, c, n) = (sim.clone(), listening.clone(), cluster.to_string(), ns.to_string());
        let follower = tokio::spawn(async move {
            let mut events = watcher(pods.clone(), config).default_backoff().touched_objects().boxed();
            while let Some(event) = events.next().await {
                let Ok(pod) = event else { continue };
                follow_pod(&s, &l, &c, &n, &pods, &pod).await;
            }
        });
        SimMembers {
            sim,
            listening,
            follower,
            certificates,
            client: client.clone(),
            cluster: cluster.to_string(),
            namespace: ns.to_string(),
        }
    }

    /// The address a Pod's member listens on.
    pub fn address(&self, pod: &str) -> Option<String> {
        self.listening.lock().unwrap().get(pod).cloned().flatten().map(|ip| format!("{ip}:27017"))
    }

    /// How a client reaches a Pod's member: by its DNS name (the suite's cluster DNS answers
    /// it), over TLS verified with the cluster's CA when the member runs TLS.
    pub async fn target(
        &self,
        pod: &str,
        credentials: Option<mongo_operator::mongo::Credentials>,
    ) -> mongo_operator::mongo::Target {
        let address = format!("{pod}.{}-members.{}.svc.{DOMAIN}:27017", self.cluster, self.namespace);
        let tls_on = self.snapshot()["members"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["name"] == pod && m["tls"] != "disabled"));
        let tls = if tls_on { Some(self.ca_file().await) } else { None };
        mongo_operator::mongo::Target { address, credentials, tls }
    }

    /// The cluster's CA bundle (the members' Secret's `ca.crt`), in a file for the driver.
    pub async fn ca_file(&self) -> std::path::PathBuf {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = format!("{}-tls", self.cluster);
        let ca = eventually(&format!("ca.crt in Secret {name}"), Duration::from_secs(60), || async {
            String::from_utf8(secrets.get_opt(&name).await.ok()??.data?.get("ca.crt")?.0.clone()).ok()
        })
        .await;
        write_ca(&format!("{}-{}", self.namespace, self.cluster), &ca)
    }

    /// The simulator's view: members, their states and the set's term.
    pub fn snapshot(&self) -> serde_json::Value {
        self.sim.snapshot()
    }

    /// The Pod name of the member that is primary in the simulator, if any.
    pub fn primary(&self) -> Option<String> {
        let snap = self.snapshot();
        snap["members"].as_array()?.iter().find(|m| m["state"] == "PRIMARY" && m["up"] == true)?["name"]
            .as_str()
            .map(str::to_string)
    }
}

/// Writes a CA bundle to a file of the test run's own and returns its path.
pub fn write_ca(tag: &str, pem: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("mongo-operator-tests-ca");
    let _ = std::fs::create_dir_all(&dir);
    let digest: String = pem.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))).to_string();
    let path = dir.join(format!("{tag}-{digest}.pem"));
    std::fs::write(&path, pem).expect("write the CA file");
    path
}

/// The release a Pod's mongod image runs: the tag of `mongo:8.0.4` (or of any image), when it
/// is a version.
pub fn image_release(pod: &Pod) -> Option<String> {
    let image = pod.spec.as_ref()?.containers.iter().find(|c| c.name == "mongod")?.image.clone()?;
    let (_, tag) = image.rsplit_once(':')?;
    let parts: Vec<&str> = tag.split('.').collect();
    (parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
        .then(|| tag.to_string())
}

async fn follow_pod(
    sim: &Sim,
    listening: &Mutex<BTreeMap<String, Option<String>>>,
    cluster: &str,
    ns: &str,
    pods: &Api<Pod>,
    pod: &Pod,
) {
    let name = pod.name_any();
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).filter(|ip| !ip.is_empty());
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let gone = pod.metadata.deletion_timestamp.is_some();
    let current = listening.lock().unwrap().get(&name).cloned();
    if gone || !running || ip.is_none() {
        if let Some(Some(_)) = current {
            sim.stop_member(&name);
            listening.lock().unwrap().insert(name, None);
        }
        return;
    }
    let ip = ip.unwrap_or_default();
    if current.as_ref() == Some(&Some(ip.clone())) || crash_looping(pod) {
        return;
    }
    let Some(release) = image_release(pod) else {
        // No such image: the container never starts.
        crash_loop(pods, pod, "the image names no MongoDB release").await;
        return;
    };
    let listen: SocketAddr = match format!("{ip}:27017").parse() {
        Ok(a) => a,
        Err(_) => return,
    };
    let host = format!("{name}.{cluster}-members.{ns}.svc.{DOMAIN}:27017");
    // What mongod reads at startup: the TLS settings of mongod.conf and the files they name.
    let tls = match started_tls(pods, cluster, pod).await {
        Ok(tls) => tls,
        Err(why) => {
            crash_loop(pods, pod, &why).await;
            return;
        }
    };
    let started = match current {
        None => match sim.add_member(&name, &host, listen).await {
            Ok(_) => Ok(sim.set_version(&name, &release) && sim.set_tls(&name, tls)),
            Err(e) => Err(e),
        },
        Some(_) => {
            sim.set_version(&name, &release);
            sim.set_tls(&name, tls);
            sim.start_member_at(&name, listen).await
        }
    };
    match started {
        Ok(true) => {
            listening.lock().unwrap().insert(name.clone(), Some(ip));
            let up = sim.snapshot()["members"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["name"] == name.as_str() && m["up"] == true));
            if !up {
                crash_loop(pods, pod, "mongod exited at startup (see the simulator's log)").await;
            }
        }
        Ok(false) => {}
        Err(e) => eprintln!("simulated member {name} cannot listen on {listen}: {e}"),
    }
}

/// The TLS a member starts with, as a real Pod's mongod would: `net.tls` of the mongod.conf in
/// the cluster's ConfigMap, and the `certificateKeyFile` from the Secret the Pod mounts. mongod
/// exits at startup when the file it names is not there (a Pod without the TLS volume).
async fn started_tls(pods: &Api<Pod>, cluster: &str, pod: &Pod) -> Result<MemberTls, String> {
    let client = pods.clone().into_client();
    let ns = pod.namespace().unwrap_or_default();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let conf = maps
        .get_opt(&format!("{cluster}-mongod-config"))
        .await
        .ok()
        .flatten()
        .and_then(|m| m.data?.get("mongod.conf").cloned())
        .unwrap_or_default();
    let conf: serde_yaml::Value = serde_yaml::from_str(&conf).unwrap_or(serde_yaml::Value::Null);
    let mode = conf["net"]["tls"]["mode"].as_str().and_then(TlsMode::parse).unwrap_or(TlsMode::Disabled);
    if mode == TlsMode::Disabled {
        return Ok(MemberTls::default());
    }
    let volume = pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).and_then(|vs| {
        vs.iter().find_map(|v| v.secret.as_ref().and_then(|s| s.secret_name.clone()).filter(|n| n.ends_with("-tls")))
    });
    let Some(secret) = volume else {
        return Err("mongod exited at startup: net.tls.certificateKeyFile does not exist in the container".into());
    };
    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    // The kubelet starts the container once the Secret it mounts exists.
    let pem = eventually(&format!("Secret {secret} for {}", pod.name_any()), Duration::from_secs(60), || async {
        let s = secrets.get_opt(&secret).await.ok()??;
        String::from_utf8(s.data?.get("tls.pem")?.0.clone()).ok()
    })
    .await;
    MemberTls::new(mode, &pem)
}

/// Whether this Pod was already marked as crash-looping.
fn crash_looping(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|cs| {
        cs.iter().any(|c| {
            c.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref())
                == Some("CrashLoopBackOff")
        })
    })
}

/// Marks a Pod as a kubelet marks a container that keeps exiting: Running, not ready.
async fn crash_loop(pods: &Api<Pod>, pod: &Pod, why: &str) {
    let container = pod.spec.as_ref().and_then(|s| s.containers.first()).map(|c| (c.name.clone(), c.image.clone()));
    let (name, image) = container.unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = serde_json::json!({ "status": {
        "conditions": [
            { "type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now },
            { "type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now },
        ],
        "containerStatuses": [{
            "name": name, "image": image.unwrap_or_default(), "imageID": "", "ready": false, "restartCount": 3,
            "started": false, "state": { "waiting": { "reason": "CrashLoopBackOff", "message": why } },
        }],
    }});
    if let Err(e) =
        pods.patch_status(&pod.name_any(), &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&status)).await
    {
        eprintln!("cannot mark {} as crash-looping: {e}", pod.name_any());
    }
}
