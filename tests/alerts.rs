//! The alert rules (charts/mongo-operator/files/alerts.yaml): promtool checks them and runs
//! their unit tests (tests/alerts/), every alert is shown firing by at least one test, and
//! every metric a rule reads is one that is really exported: the exporter's, by the pinned
//! `percona/mongodb_exporter` (built from its Go module) run with the arguments production
//! gives it against simulated members, and the operator's, by its own encoder.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use support::metric_names;
use support::servers::tool_dir;

fn rules_file() -> PathBuf {
    support::repo_root().join("charts/mongo-operator/files/alerts.yaml")
}

fn rule_tests() -> Vec<PathBuf> {
    let dir = support::repo_root().join("tests/alerts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/alerts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(tool_dir("promtool").join("promtool"))
        .args(args)
        .current_dir(support::repo_root())
        .output()
        .expect("run promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Each rule's alert name and expression.
fn rules() -> Vec<(String, String)> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(rules_file()).expect("rules")).expect("rules YAML");
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alert").to_string();
            out.push((name, rule["expr"].as_str().expect("expr").to_string()));
        }
    }
    out
}

#[test]
fn every_rule_passes_promtool_and_every_alert_fires_in_a_unit_test() {
    promtool(&["check", "rules", rules_file().to_str().expect("path")]);
    let tests = rule_tests();
    let names: Vec<String> = tests.iter().map(|p| p.display().to_string()).collect();
    let mut args = vec!["test", "rules"];
    args.extend(names.iter().map(String::as_str));
    promtool(&args);
    // An alert no test expects to fire could be one that never fires.
    let mut firing = BTreeSet::new();
    for file in &tests {
        let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(file).expect("test")).expect("YAML");
        for test in doc["tests"].as_sequence().expect("tests") {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                if case["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty()) {
                    firing.insert(case["alertname"].as_str().expect("alertname").to_string());
                }
            }
        }
    }
    let never: Vec<String> = rules().into_iter().map(|(n, _)| n).filter(|n| !firing.contains(n)).collect();
    assert!(never.is_empty(), "alerts no unit test shows firing: {never:?}");
}

#[tokio::test]
async fn every_metric_a_rule_reads_is_exported_by_the_pinned_exporter_or_the_operator() {
    // Against simulated members only: every series a rule reads is shown in a live scrape.
    let seen = metric_names::of_simulated_members().await;
    let operator = metric_names::of_the_operator();
    let mut missing = Vec::new();
    for (alert, expr) in rules() {
        for metric in metric_names::metrics_in(&expr) {
            let found = seen.contains_key(&metric)
                || operator.contains_key(&metric)
                || metric_names::ELSEWHERE.contains(&metric.as_str());
            if !found {
                missing.push(format!("{alert}: {metric}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "rules read metrics nothing exports: {missing:#?}\nexporter: {seen:?}\noperator: {operator:?}"
    );
}
