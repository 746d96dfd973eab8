//! The CRDs committed under `crds/` (and shipped by the Helm chart) must be exactly what the
//! code generates, and every field must explain itself in `kubectl explain`.

mod support;

use mongo_operator::api;
use serde_json::Value;

#[test]
fn committed_crds_match_the_code() {
    let dir = support::repo_root().join("crds");
    let mut stale = Vec::new();
    for crd in api::crds() {
        let file = dir.join(api::crd_file_name(&crd));
        let expected = api::crd_yaml(&crd).expect("CRD serialises");
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        if committed != expected {
            stale.push(file.display().to_string());
        }
    }
    assert!(stale.is_empty(), "CRD files are out of date: {stale:?}; regenerate them with `make crds` and commit");
    let files = std::fs::read_dir(&dir).expect("crds/ exists").count();
    assert_eq!(files, api::crds().len(), "crds/ holds files that no CRD generates");
}

/// The Helm chart installs the CRDs from its own `crds/` (Helm reads nothing outside the chart),
/// so that directory holds byte-for-byte copies of the repository's `crds/`.
#[test]
fn helm_chart_crds_are_copies_of_the_committed_crds() {
    let root = support::repo_root();
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let (ours, chart) = (root.join("crds"), root.join("charts/mongo-operator/crds"));
    assert_eq!(
        names(&chart),
        names(&ours),
        "charts/mongo-operator/crds/ and crds/ list different files; run `make crds`"
    );
    let differ: Vec<String> = names(&ours)
        .into_iter()
        .filter(|n| std::fs::read(ours.join(n)).ok() != std::fs::read(chart.join(n)).ok())
        .collect();
    assert!(differ.is_empty(), "the chart's copies differ from crds/: {differ:?}; run `make crds` and commit");
}

/// Walks a schema and collects the path of every property without a description.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let p = format!("{path}.{name}");
            if prop.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                out.push(p.clone());
            }
            undocumented(prop, &p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
}

#[test]
fn every_field_has_a_description() {
    let mut missing = Vec::new();
    for crd in api::crds() {
        let kind = crd.spec.names.kind.clone();
        for version in &crd.spec.versions {
            let schema = serde_json::to_value(&version.schema).expect("schema serialises");
            let root = &schema["openAPIV3Schema"];
            for top in ["spec", "status"] {
                undocumented(&root["properties"][top], &format!("{kind}.{top}"), &mut missing);
            }
        }
    }
    // Owned mongod.conf keys are declared only so CEL can refuse them; their parent explains.
    missing.retain(|p| !p.contains(".mongod.config."));
    assert!(missing.is_empty(), "fields without a description:\n{}", missing.join("\n"));
}

#[test]
fn all_kinds_share_the_mongo_category_and_have_status() {
    for crd in api::crds() {
        assert_eq!(crd.spec.names.categories.as_deref(), Some(&[api::CATEGORY.to_string()][..]));
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{} has no status",
            crd.spec.names.kind
        );
        assert!(!crd.spec.names.short_names.clone().unwrap_or_default().is_empty());
        assert!(version.additional_printer_columns.as_ref().is_some_and(|c| c.len() >= 3));
    }
}

/// `make crds` (which the drift message above sends people to) and `make run` (the README's
/// way to run the operator) call `cargo run`, which must know which binary to run now that the
/// kubectl plugin is built from the same package: the operator is `default-run`. (Both were
/// broken for a while by the plugin's arrival, and nothing said so.)
#[test]
fn cargo_run_runs_the_operator() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(support::repo_root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let package = metadata["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "mongo-operator"))
        .expect("the package");
    let binaries = package["targets"]
        .as_array()
        .map_or(0, |t| t.iter().filter(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"))).count());
    assert!(binaries > 1 && package["default_run"] == "mongo-operator", "{}", package["default_run"]);
    let makefile = std::fs::read_to_string(support::repo_root().join("Makefile")).expect("Makefile");
    assert!(makefile.contains("cargo run --locked -- run"), "make run runs the operator's `run`");
}
