//! Other projects' CRDs, taken from their modules into the tool cache (`e2e/tools.sh`):
//! installed as they are, so the API server checks what the operator writes against their real
//! schemas, and removed again.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams};

/// Applies `file` of `tool`'s directory for each `(file, CRD name)`, and waits until every
/// CRD is established.
pub async fn install(client: &Client, tool: &str, crds: &[(String, String)]) {
    let dir = super::servers::tool_dir(tool);
    for (file, _) in crds {
        super::rbac::kubectl_apply(&std::fs::read_to_string(dir.join(file)).expect("CRD file"));
    }
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, name) in crds {
        super::eventually(&format!("CRD {name} established"), Duration::from_secs(30), || async {
            let c = api.get(name).await.ok()?;
            c.status?.conditions?.iter().any(|x| x.type_ == "Established" && x.status == "True").then_some(())
        })
        .await;
    }
}

/// Deletes the CRDs (and so every object of theirs), waiting until they are gone.
pub async fn remove(client: &Client, crds: &[(String, String)]) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, name) in crds {
        let _ = api.delete(name, &DeleteParams::default()).await;
        super::eventually(&format!("CRD {name} gone"), Duration::from_secs(60), || async {
            api.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
}
