//! The users stage: each user in `spec.users` exists with its roles and the password of its
//! connection Secret; users the operator created and the spec no longer lists are dropped.
//!
//! Crash safety: a generated password is written to the connection Secret before MongoDB
//! hears of it, and the Secret records (as a digest) which password MongoDB has; so a crash at
//! any point leads the next reconcile to finish the job, never to lose a password.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};

use crate::api::{MongoClusterSpec, UserSpec};
use crate::build::names::ClusterNames;
use crate::build::secrets::{
    self, APPLIED_PASSWORD_ANNOTATION, Connection, PASSWORD_KEY, USER_ANNOTATION, USER_DB_ANNOTATION,
};
use crate::controller::Events;
use crate::controller::error::{Error, KubeContext};
use crate::controller::ssa::apply;
use crate::mongo::{AdminError, MongoAdmin, Role, Target, UserInfo, UserRequest};

use super::world::{World, secret_text as text};

/// The connection Secret's name of a user.
pub fn secret_name(names: &ClusterNames, user: &UserSpec) -> String {
    user.connection_secret_name.clone().unwrap_or_else(|| names.user_secret(&user.db, &user.name))
}

/// The password a user should have: from its `passwordSecretRef`, else the one already in its
/// connection Secret, else None (one must be generated). Err when the referenced Secret cannot
/// be read (validation reports it; the user is skipped).
fn wanted_password(user: &UserSpec, world: &World, existing: Option<&Secret>) -> Result<Option<String>, ()> {
    match &user.password_secret_ref {
        Some(r) => match world.password_secrets.get(&r.name) {
            Some(Some(s)) => text(s, &r.key).filter(|p| !p.is_empty()).map(Some).ok_or(()),
            _ => Err(()),
        },
        None => Ok(existing.and_then(|s| text(s, PASSWORD_KEY)).filter(|p| !p.is_empty())),
    }
}

/// The operator's own users (`mongo-operator-*`, which admission refuses in `spec.users`) and
/// `__system`: no Secret can have them dropped.
fn reserved(user: &str) -> bool {
    user.starts_with("mongo-operator") || user == crate::mongo::SYSTEM_USER
}

fn role_set(roles: &[Role]) -> BTreeSet<Role> {
    roles.iter().cloned().collect()
}

fn spec_roles(user: &UserSpec) -> Vec<Role> {
    user.roles.iter().map(|r| Role { role: r.name.clone(), db: r.db.clone() }).collect()
}

/// Everything the users stage needs.
pub struct Users<'a, A: MongoAdmin> {
    pub client: &'a Client,
    pub admin: &'a A,
    pub names: &'a ClusterNames,
    pub spec: &'a MongoClusterSpec,
    pub owner: &'a OwnerReference,
    pub domain: &'a str,
    /// The primary, logged in as the operator's user.
    pub primary: &'a Target,
    pub events: &'a Events<'a>,
    /// The CAs clients verify the members with, when they connect over TLS.
    pub tls_ca: Option<&'a str>,
    /// Every member's external `host:port` (`expose.perMember`), once all have one.
    pub external_hosts: Option<Vec<String>>,
}

impl<A: MongoAdmin> Users<'_, A> {
    fn connection<'b>(
        &'b self,
        user: &'b UserSpec,
        name: &'b str,
        password: &'b str,
        digest: Option<&'b str>,
    ) -> Secret {
        secrets::connection(&Connection {
            names: self.names,
            cluster_domain: self.domain,
            members: self.spec.members,
            secret_name: name,
            username: &user.name,
            db: &user.db,
            password,
            applied_digest: digest,
            policy: self.spec.deletion_policy,
            owner: self.owner,
            tls_ca: self.tls_ca,
            external_hosts: self.external_hosts.as_deref(),
        })
    }

    /// An Event about a user, related to its connection Secret.
    async fn event(&self, secret: &str, reason: &str, action: &str, note: String) {
        self.events.normal_about(self.events.related("Secret", secret), reason, action, note).await;
    }

    /// Applies a connection Secret only when it differs from what is stored. A Secret kept
    /// from an earlier cluster of the same name is adopted (bound to this cluster's UID),
    /// with an Event.
    async fn write(&self, api: &Api<Secret>, wanted: &Secret, existing: Option<&Secret>) -> Result<(), Error> {
        let same = existing.is_some_and(|e| {
            secrets::holds(e, wanted)
                && e.metadata.annotations.as_ref().map(|a| a.get(APPLIED_PASSWORD_ANNOTATION))
                    == wanted.metadata.annotations.as_ref().map(|a| a.get(APPLIED_PASSWORD_ANNOTATION))
        });
        if !same {
            apply(api, wanted).await?;
        }
        if let Some(earlier) = existing.and_then(secrets::bound_uid).filter(|uid| *uid != self.owner.uid) {
            let name = wanted.name_any();
            let note = format!(
                "adopted Secret {name}, kept from an earlier cluster of the same name (UID {earlier}): its password is \
                 this cluster's"
            );
            self.events.normal_about(self.events.related("Secret", &name), "SecretAdopted", "Adopt", note).await;
        }
        Ok(())
    }

    async fn users_of(&self, cache: &mut BTreeMap<String, Vec<UserInfo>>, db: &str) -> Result<Vec<UserInfo>, Error> {
        if let Some(u) = cache.get(db) {
            return Ok(u.clone());
        }
        let users = self.admin.users(self.primary, db).await.doing(|| format!("listing the users of {db}"))?;
        cache.insert(db.to_string(), users.clone());
        Ok(users)
    }

    /// Brings every user in line. Returns how many changes were made in MongoDB.
    pub async fn reconcile(&self, world: &World) -> Result<usize, Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.names.namespace);
        let mut cache = BTreeMap::new();
        let mut changes = 0;
        let mut kept = BTreeSet::new();
        for user in &self.spec.users {
            let name = secret_name(self.names, user);
            kept.insert(name.clone());
            // Somebody else's Secret: validation reports it, and it is never written to.
            if world.foreign_secrets.contains_key(&name) {
                continue;
            }
            let existing = world.user_secrets.get(&name);
            let Ok(wanted) = wanted_password(user, world, existing) else { continue };
            let password = wanted.unwrap_or_else(secrets::generate::password);
            let applied =
                existing.and_then(|s| s.annotations().get(APPLIED_PASSWORD_ANNOTATION).cloned()).filter(|d| {
                    existing
                        .and_then(|s| text(s, PASSWORD_KEY))
                        .is_some_and(|p| *d == secrets::password_digest(&user.db, &user.name, &p))
                });
            // 1. The password is safe in the Secret before MongoDB is told.
            let stored = self.connection(user, &name, &password, applied.as_deref());
            self.write(&api, &stored, existing).await?;
            // 2. MongoDB has the user, its roles and that password.
            let digest = secrets::password_digest(&user.db, &user.name, &password);
            let roles = spec_roles(user);
            let current = self.users_of(&mut cache, &user.db).await?.into_iter().find(|u| u.user == user.name);
            let request = |password: Option<String>, roles: Option<Vec<Role>>| UserRequest {
                db: user.db.clone(),
                name: user.name.clone(),
                password,
                roles,
            };
            match current {
                None => {
                    match self.admin.create_user(self.primary, &request(Some(password.clone()), Some(roles))).await {
                        Ok(()) | Err(AdminError::UserExists(_)) => {}
                        Err(source) => {
                            return Err(Error::Mongo {
                                action: format!("creating user {}@{}", user.name, user.db),
                                source,
                            });
                        }
                    }
                    self.event(&name, "UserCreated", "CreateUser", format!("created user {}@{}", user.name, user.db))
                        .await;
                    changes += 1;
                }
                Some(info) => {
                    let new_password = (applied.as_deref() != Some(digest.as_str())).then(|| password.clone());
                    let new_roles = (role_set(&info.roles) != role_set(&roles)).then_some(roles);
                    if new_password.is_some() || new_roles.is_some() {
                        let what = match (&new_password, &new_roles) {
                            (Some(_), Some(_)) => "password and roles",
                            (Some(_), None) => "password",
                            _ => "roles",
                        };
                        self.admin
                            .update_user(self.primary, &request(new_password, new_roles))
                            .await
                            .doing(|| format!("updating user {}@{}", user.name, user.db))?;
                        self.event(
                            &name,
                            "UserUpdated",
                            "UpdateUser",
                            format!("updated the {what} of user {}@{}", user.name, user.db),
                        )
                        .await;
                        changes += 1;
                    }
                }
            }
            // 3. The Secret records that MongoDB has this password.
            if applied.as_deref() != Some(digest.as_str()) {
                let confirmed = self.connection(user, &name, &password, Some(&digest));
                apply(&api, &confirmed).await?;
            }
        }
        // Users whose connection Secret the operator wrote for this cluster but the spec no
        // longer lists. Labels and annotations anybody who can create a Secret can copy; the
        // cluster's UID only the operator wrote. Its own users are never dropped this way.
        for (name, secret) in world.user_secrets.iter().filter(|(n, _)| !kept.contains(*n)) {
            let (Some(user), Some(db)) =
                (secret.annotations().get(USER_ANNOTATION), secret.annotations().get(USER_DB_ANNOTATION))
            else {
                continue;
            };
            if secrets::bound_uid(secret) != Some(self.owner.uid.as_str()) || reserved(user) {
                continue;
            }
            match self.admin.drop_user(self.primary, db, user).await {
                Ok(()) | Err(AdminError::UserNotFound(_)) => {}
                Err(source) => return Err(Error::Mongo { action: format!("dropping user {user}@{db}"), source }),
            }
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => return Err(Error::Kube { action: format!("deleting Secret {name}"), source }),
            }
            self.event(name, "UserDropped", "DropUser", format!("dropped user {user}@{db} and Secret {name}")).await;
            changes += 1;
        }
        Ok(changes)
    }
}
