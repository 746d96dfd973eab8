//! `kubectl mongo logs NAME [--member M]`: the members' logs, each line prefixed with its Pod
//! and container, read through the API with the user's own rights (as `kubectl logs` does).

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, LogParams};

use super::common::{PluginError, classify};

/// The containers of a Pod, init containers first (the one that copies the operator's binary).
pub fn containers(pod: &Pod) -> Vec<String> {
    let spec = pod.spec.as_ref();
    let init = spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten();
    let main = spec.map(|s| s.containers.iter()).into_iter().flatten();
    init.chain(main).map(|c| c.name.clone()).collect()
}

/// One container's log, the last `tail` lines (or why it could not be read).
pub async fn read(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    tail: Option<i64>,
) -> Result<String, PluginError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = LogParams { container: Some(container.to_string()), tail_lines: tail, ..LogParams::default() };
    api.logs(pod, &params).await.map_err(classify(&format!("read the log of {pod}/{container}"), namespace))
}

/// Each line prefixed with `[pod/container]`, as `kubectl logs --prefix` does.
pub fn prefixed(pod: &str, container: &str, log: &str) -> String {
    log.lines().map(|l| format!("[{pod}/{container}] {l}\n")).collect()
}
