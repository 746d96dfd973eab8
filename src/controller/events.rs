//! Events: every replica-set step, every refusal, every user change, on the object concerned.
//! Publishing an Event never fails a reconcile; a lost Event is logged instead.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

/// Events about one object.
pub struct Events<'a> {
    recorder: &'a Recorder,
    object: ObjectReference,
}

impl<'a> Events<'a> {
    pub fn new(recorder: &'a Recorder, object: ObjectReference) -> Events<'a> {
        Events { recorder, object }
    }

    /// Something the operator did or saw that a user would want to know.
    pub async fn normal(&self, reason: &str, action: &str, note: impl Into<String>) {
        self.publish(EventType::Normal, reason, action, note.into(), None).await;
    }

    /// Like [`Events::normal`], about a related object (a member's Pod, a user's Secret). The
    /// recorder folds repeats of one reason into a series per related object, so steps on
    /// different members stay separate Events.
    pub async fn normal_about(&self, related: ObjectReference, reason: &str, action: &str, note: impl Into<String>) {
        self.publish(EventType::Normal, reason, action, note.into(), Some(related)).await;
    }

    /// Something that needs a user's attention.
    pub async fn warning(&self, reason: &str, action: &str, note: impl Into<String>) {
        self.publish(EventType::Warning, reason, action, note.into(), None).await;
    }

    /// Like [`Events::warning`], about a related object.
    pub async fn warning_about(&self, related: ObjectReference, reason: &str, action: &str, note: impl Into<String>) {
        self.publish(EventType::Warning, reason, action, note.into(), Some(related)).await;
    }

    /// A reference to a core/v1 object in the same namespace, for [`Events::normal_about`].
    pub fn related(&self, kind: &str, name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(kind.into()),
            name: Some(name.into()),
            namespace: self.object.namespace.clone(),
            ..ObjectReference::default()
        }
    }

    async fn publish(
        &self,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
        related: Option<ObjectReference>,
    ) {
        tracing::info!(reason, action, note = %note, warning = type_ == EventType::Warning, "event");
        let event = Event {
            type_,
            reason: reason.to_string(),
            // The API refuses notes over 1 kB.
            note: Some(note.chars().take(1000).collect()),
            action: action.to_string(),
            secondary: related,
        };
        if let Err(error) = self.recorder.publish(&event, &self.object).await {
            tracing::warn!(%error, reason, "could not publish an event");
        }
    }
}
