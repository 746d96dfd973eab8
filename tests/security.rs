//! What the security review found good, kept: tool passwords only in owner-only files,
//! secrets never in a debug print, no reference that reaches into another namespace. (Pods
//! passing the `restricted` profile: tests/builders_admission.rs; random secrets from the
//! operating system: `generated_values_are_random_and_valid`; YAML rendered by serde_yaml,
//! never by string pasting: `mongod_conf` and `tools` unit tests.)

use std::os::unix::fs::PermissionsExt;

use mongo_operator::backup::plan::Source;
use mongo_operator::backup::store::StoreCredentials;
use mongo_operator::backup::tools::ToolProcess;
use mongo_operator::mongo::{Credentials, UserRequest};

const PASSWORD: &str = "s3cr3t-pa55word-nobody-may-see";

#[test]
fn a_tool_gets_its_password_in_an_owner_only_file_never_on_its_command_line() {
    let dir = tempfile::tempdir().expect("dir");
    // A stand-in for mongodump that reports its arguments and the mode of its config file.
    let tool = dir.path().join("tool");
    std::fs::write(
        &tool,
        "#!/bin/sh\nfor a in \"$@\"; do echo \"ARG $a\"; case \"$a\" in --config=*) f=\"${a#--config=}\"; echo \"MODE $(stat -c %a \"$f\")\"; echo \"FILE $(cat \"$f\")\";; esac; done\n",
    )
    .expect("write");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let source = Source::user("mongodb://db-0:27017/?directConnection=true".into(), "mongo-operator-backup");
    let mut process =
        ToolProcess::spawn(&tool, &source, Some(PASSWORD), &["--archive".to_string()], false, true).expect("spawn");
    let mut out = String::new();
    std::io::Read::read_to_string(process.child.stdout.as_mut().expect("stdout"), &mut out).expect("read");
    assert!(process.wait().expect("wait").success());
    let args: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("ARG ")).collect();
    assert!(args.iter().any(|a| a.starts_with("--config=")), "{out}");
    assert!(!args.iter().any(|a| a.contains(PASSWORD)), "the password is on the command line: {args:?}");
    assert!(out.lines().any(|l| l == "MODE 600"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("FILE password: ") && l.contains(PASSWORD)), "{out}");
}

#[test]
fn secrets_never_appear_in_a_debug_print() {
    let credentials = Credentials::scram("app", "admin", PASSWORD);
    let store = StoreCredentials {
        access_key_id: Some(PASSWORD.into()),
        secret_access_key: Some(PASSWORD.into()),
        ..StoreCredentials::default()
    };
    let request = UserRequest { db: "admin".into(), name: "app".into(), password: Some(PASSWORD.into()), roles: None };
    for printed in [format!("{credentials:?}"), format!("{store:?}"), format!("{request:?}")] {
        assert!(!printed.contains(PASSWORD), "{printed}");
    }
}

/// Every `properties` map in a schema, with its path.
fn property_names(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match schema {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(properties)) = map.get("properties") {
                for (name, sub) in properties {
                    out.push(format!("{path}.{name}"));
                    property_names(sub, &format!("{path}.{name}"), out);
                }
            }
            for (key, sub) in map.iter().filter(|(k, _)| *k != "properties") {
                property_names(sub, &format!("{path}/{key}"), out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| property_names(i, path, out)),
        _ => {}
    }
}

#[test]
fn no_reference_in_a_spec_can_name_another_namespace() {
    for crd in mongo_operator::api::crds() {
        let json = serde_json::to_value(&crd).expect("json");
        let mut names = Vec::new();
        property_names(
            &json["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"],
            "spec",
            &mut names,
        );
        // Label selectors choose namespaces by label (the attachment's peers, which a
        // NetworkPolicy reads); nothing names one.
        let named: Vec<&String> = names.iter().filter(|n| n.ends_with(".namespace")).collect();
        assert!(
            named.is_empty(),
            "{} lets a reference name a namespace: {named:?}",
            crd.metadata.name.unwrap_or_default()
        );
    }
}
