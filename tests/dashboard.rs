//! The Grafana dashboard (charts/mongo-operator/files/dashboard.json): valid for the Grafana we
//! name (12: the dashboard schema of the Grafana Foundation SDK, checked strictly by
//! `e2e/grafana-dashboard-check`), every query is PromQL that promtool parses, and every
//! metric and label a query reads is one that is really exported: by the pinned exporter
//! against simulated members, or against a real mongod's recorded answers for the sections no
//! stand-in has (WiredTiger's cache, memory), or by the operator; the chart ships it as the
//! ConfigMap Grafana's sidecar loads.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use support::metric_names::{self, ELSEWHERE, Families};
use support::servers::tool_dir;

fn dashboard_file() -> PathBuf {
    support::repo_root().join("charts/mongo-operator/files/dashboard.json")
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dashboard_file()).expect("dashboard")).expect("dashboard JSON")
}

/// Labels Prometheus gives every series it scrapes from a member's PodMonitor target
/// (the Prometheus Operator's `namespace`, `pod`, `container`, `endpoint`, `job`,
/// `instance`), and the `cluster` its relabeling adds (src/build/pod_monitor.rs).
const TARGET_LABELS: [&str; 7] = ["namespace", "pod", "container", "endpoint", "job", "instance", "cluster"];

/// Every panel's queries (rows' panels included) as (panel title, expression), and the
/// template variables' queries.
fn queries(d: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push((title.clone(), t["expr"].as_str().expect("every target has an expr").to_string()));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let query = v["query"]["query"].as_str().expect("a variable's query");
            out.push((format!("variable {}", v["name"]), query.to_string()));
        }
    }
    out
}

/// The expression as Prometheus receives it, with Grafana's variables at a value each.
fn as_sent(expr: &str) -> String {
    expr.replace("${cluster:regex}", ".*")
        .replace("$namespace", ".*")
        .replace("$cluster", ".*")
        .replace("$__rate_interval", "2m")
}

/// The label names an expression uses: in each metric's selector (with its metric), and in
/// its `by`, `without`, `on`, `ignoring`, `group_left`, `group_right` and `label_values`
/// clauses (without one).
fn labels_used(expr: &str) -> Vec<(Option<String>, String)> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        if chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if !ident(chars[i]) || (i > 0 && (ident(chars[i - 1]) || chars[i - 1] == '$' || chars[i - 1] == '{')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        let opens = |c: char| j < chars.len() && chars[j] == c;
        let metric = !metric_names::metrics_in(&word).is_empty();
        let clause = ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&word.as_str());
        if (metric && opens('{')) || (clause && opens('(')) || (word == "label_values" && opens('(')) {
            let close = if chars[j] == '{' { '}' } else { ')' };
            let mut k = j + 1;
            let mut names = Vec::new();
            let mut name = String::new();
            let mut depth = 0;
            while k < chars.len() && !(chars[k] == close && depth == 0) {
                match chars[k] {
                    '"' => {
                        k += 1;
                        while k < chars.len() && chars[k] != '"' {
                            k += if chars[k] == '\\' { 2 } else { 1 };
                        }
                    }
                    '{' | '(' => depth += 1,
                    '}' | ')' => depth -= 1,
                    c if ident(c) && depth == 0 => name.push(c),
                    _ => {
                        if !name.is_empty() {
                            names.push(std::mem::take(&mut name));
                        }
                    }
                }
                k += 1;
            }
            if !name.is_empty() {
                names.push(name);
            }
            if metric {
                out.extend(names.into_iter().map(|n| (Some(word.clone()), n)));
            } else if word == "label_values" {
                // label_values(metric{...}, label): the last name is the label.
                if let Some(label) = names.pop() {
                    out.push((None, label));
                }
                i = j + 1; // the metric inside is looked at on its own
                continue;
            } else {
                out.extend(names.into_iter().map(|n| (None, n)));
            }
            i = k + 1;
        }
    }
    out
}

#[test]
fn the_dashboard_passes_grafana_12s_dashboard_schema_strictly() {
    let out = Command::new(tool_dir("grafana-dashboard-check").join("grafana-dashboard-check"))
        .arg(dashboard_file())
        .output()
        .expect("run grafana-dashboard-check");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    println!("{text}");
    let d = dashboard();
    // Every section the issue names is there, with the cluster and namespace variables.
    let rows: Vec<&str> = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(rows, ["Overview", "Operations and latency", "Connections", "Cache and tickets", "Disk", "Backups"]);
    let variables: Vec<&str> =
        d["templating"]["list"].as_array().expect("variables").iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(variables, ["datasource", "namespace", "cluster"]);
}

#[test]
fn every_query_is_promql_that_promtool_parses() {
    let d = dashboard();
    let mut rules = Vec::new();
    for (n, (panel, expr)) in queries(&d).into_iter().enumerate() {
        if panel.starts_with("variable ") {
            continue; // label_values() is Grafana's, not PromQL
        }
        rules.push(serde_json::json!({"record": format!("dashboard:query_{n}"), "expr": as_sent(&expr)}));
    }
    let file = std::env::temp_dir().join(format!("mongo-operator-dashboard-queries-{}.yaml", std::process::id()));
    let doc = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(&file, serde_yaml::to_string(&doc).expect("YAML")).expect("write");
    let out = Command::new(tool_dir("promtool").join("promtool"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    let _ = std::fs::remove_file(&file);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool refuses a dashboard query:\n{text}");
}

/// The labels a family's series carry once scraped.
fn labels_of(metric: &str, sources: &[&Families]) -> Option<BTreeSet<String>> {
    if metric == "up" {
        return Some(BTreeSet::new());
    }
    if ELSEWHERE.contains(&metric) {
        // The kubelet's volume statistics (`pkg/kubelet/metrics/collectors/volume_stats.go`).
        return Some(["namespace", "persistentvolumeclaim"].into_iter().map(String::from).collect());
    }
    sources.iter().find_map(|s| s.get(metric).cloned())
}

#[tokio::test]
async fn every_metric_and_label_a_query_reads_is_exported() {
    let simulated = metric_names::of_simulated_members().await;
    let recorded = metric_names::of_a_recorded_member().await;
    let operator = metric_names::of_the_operator();
    let sources = [&simulated, &operator, &recorded];
    let mut problems = Vec::new();
    let mut from_the_recording = BTreeSet::new();
    let queries = queries(&dashboard());
    assert!(queries.len() >= 25, "{} queries", queries.len());
    for (panel, expr) in &queries {
        let metrics = metric_names::metrics_in(expr);
        assert!(!metrics.is_empty(), "{panel}: no metric in {expr}");
        let mut known_labels: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
        for metric in &metrics {
            match labels_of(metric, &sources) {
                Some(labels) => known_labels.extend(labels),
                None => problems.push(format!("{panel}: {metric} is exported by nothing")),
            }
            if !simulated.contains_key(metric) && !operator.contains_key(metric) && recorded.contains_key(metric) {
                from_the_recording.insert(metric.clone());
            }
        }
        for (metric, label) in labels_used(expr) {
            let on_it = match &metric {
                Some(m) => labels_of(m, &sources)
                    .is_some_and(|l| l.contains(&label) || TARGET_LABELS.contains(&label.as_str())),
                None => known_labels.contains(&label),
            };
            if !on_it {
                problems
                    .push(format!("{panel}: label {label} is not on {}", metric.as_deref().unwrap_or("its series")));
            }
        }
    }
    println!("metrics only the recorded mongod shows (no stand-in has these sections): {from_the_recording:?}");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_alert_a_panel_names_is_one_of_the_rules() {
    let rules =
        std::fs::read_to_string(support::repo_root().join("charts/mongo-operator/files/alerts.yaml")).expect("rules");
    let text = std::fs::read_to_string(dashboard_file()).expect("dashboard");
    let named: BTreeSet<&str> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| (w.starts_with("Mongodb") || w.starts_with("MongoOperator")) && w.len() > 7)
        .collect();
    assert!(!named.is_empty());
    let unknown: Vec<&&str> = named.iter().filter(|a| !rules.contains(&format!("alert: {a}\n"))).collect();
    assert!(unknown.is_empty(), "panels name alerts that do not exist: {unknown:?}");
}

#[test]
fn the_label_reader_sees_selectors_and_clauses() {
    let used = labels_used(
        r#"sum by (pod, txn_rw) (rate(mongodb_ss_opcounters{namespace=~"$namespace", legacy_op_type!="x,y"}[$__rate_interval])) / on (cluster) group_right label_values(mongodb_up{a="b"}, cluster)"#,
    );
    let metric = |l: &str| (Some("mongodb_ss_opcounters".to_string()), l.to_string());
    let bare = |l: &str| (None, l.to_string());
    assert_eq!(
        used,
        vec![
            bare("pod"),
            bare("txn_rw"),
            metric("namespace"),
            metric("legacy_op_type"),
            bare("cluster"),
            bare("cluster"),
            (Some("mongodb_up".to_string()), "a".to_string()),
        ]
    );
}

#[test]
fn the_chart_ships_the_dashboard_for_grafanas_sidecar() {
    let rendered = support::rbac::helm_template(&[
        "--set",
        "grafanaDashboard.enabled=true",
        "--set-string",
        "grafanaDashboard.annotations.grafana_folder=Databases",
        "--show-only",
        "templates/grafana-dashboard.yaml",
        "--namespace",
        "monitoring",
    ]);
    let cm: serde_yaml::Value = serde_yaml::from_str(&rendered).expect("a ConfigMap");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "Databases");
    let shipped = cm["data"]["mongo-operator.json"].as_str().expect("the dashboard");
    let file = std::fs::read_to_string(dashboard_file()).expect("dashboard");
    assert_eq!(shipped.trim_end(), file.trim_end(), "the ConfigMap holds files/dashboard.json as it is");
    // Off by default: the whole chart renders no dashboard.
    let off = support::rbac::helm_template(&[]);
    assert!(!off.contains("grafana_dashboard"), "a dashboard ConfigMap rendered by default");
}
