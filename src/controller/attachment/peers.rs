//! Peers in words, for status and Events: pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::AttachmentPeer;

/// A selector as people write it: `app=shop,tier in (web,api)`; "every" when it selects all.
pub fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => format!("{} {} ({values})", e.key, op.to_lowercase()),
        });
    }
    if parts.is_empty() { "every".into() } else { parts.join(",") }
}

/// One peer in words.
pub fn describe(peer: &AttachmentPeer) -> String {
    if let Some(block) = &peer.ip_block {
        return match block.except.as_deref() {
            Some(except) if !except.is_empty() => {
                let except: Vec<&str> = except.iter().map(|c| c.0.as_str()).collect();
                format!("addresses {} except {}", block.cidr.0, except.join(", "))
            }
            _ => format!("addresses {}", block.cidr.0),
        };
    }
    let pods = match &peer.pod_selector {
        Some(s) if selector_text(s) != "every" => format!("pods {}", selector_text(s)),
        _ => "all pods".to_string(),
    };
    match &peer.namespace_selector {
        None => format!("{pods} in this namespace"),
        Some(ns) if selector_text(ns) == "every" => format!("{pods} in every namespace"),
        Some(ns) => format!("{pods} in namespaces {}", selector_text(ns)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::api::{Cidr, PrivateIpBlock};

    fn labels(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()),
            match_expressions: None,
        }
    }

    #[test]
    fn peers_read_as_people_would_write_them() {
        let here =
            AttachmentPeer { pod_selector: Some(labels(&[("app", "shop")])), namespace_selector: None, ip_block: None };
        assert_eq!(describe(&here), "pods app=shop in this namespace");
        let there = AttachmentPeer {
            pod_selector: Some(LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["web".into(), "api".into()]),
                }]),
            }),
            namespace_selector: Some(labels(&[("team", "shop")])),
            ip_block: None,
        };
        assert_eq!(describe(&there), "pods tier in (web,api) in namespaces team=shop");
        let all =
            AttachmentPeer { pod_selector: None, namespace_selector: Some(LabelSelector::default()), ip_block: None };
        assert_eq!(describe(&all), "all pods in every namespace");
        let vms = AttachmentPeer {
            pod_selector: None,
            namespace_selector: None,
            ip_block: Some(PrivateIpBlock {
                cidr: Cidr("10.20.0.0/16".into()),
                except: Some(vec![Cidr("10.20.5.0/24".into())]),
            }),
        };
        assert_eq!(describe(&vms), "addresses 10.20.0.0/16 except 10.20.5.0/24");
    }
}
