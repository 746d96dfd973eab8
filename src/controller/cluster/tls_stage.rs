//! The TLS stage: before the objects are applied, what TLS the members start with and the
//! certificates they need; once the set is healthy and rolled out, the run-time move to the
//! next mode, and what the members run with, for the status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::ResourceExt;

use super::certificates::{self, Certificates, ClusterTls};
use super::tls_mode::{self, TlsPlan};
use super::validate::Problem;
use super::world::World;
use crate::api::{MongoCluster, TlsMode, TlsStatus};
use crate::build::names::ClusterNames;
use crate::controller::error::Error;
use crate::controller::{Context, Events};
use crate::mongo::{MongoAdmin, Target};

/// What the reconcile applies for TLS, and what it knows.
#[derive(Clone, Debug)]
pub struct TlsState {
    pub plan: TlsPlan,
    /// The mode every member was last seen in (or assumed in; see `tls_mode::in_force`).
    pub in_force: TlsMode,
    pub wanted: TlsMode,
    /// The certificates, when TLS is or will be on and they are usable.
    pub certificates: Option<ClusterTls>,
}

/// Plans the TLS step and brings the certificates up to date; the member Pods of `world`
/// learn the CA file their connections verify with. A certificate that cannot be used is a
/// problem, and TLS then stays as it is; one close to expiry and not renewed is a problem too,
/// that changes nothing.
pub async fn prepare<A: MongoAdmin>(
    ctx: &Context<A>,
    cluster: &MongoCluster,
    names: &ClusterNames,
    owner: &OwnerReference,
    world: &mut World,
    events: &Events<'_>,
) -> Result<(TlsState, Option<Problem>), Error> {
    let spec = &cluster.spec;
    let current = world.tls_token().map(str::to_string);
    let reported = cluster.reported_tls().map(|t| t.mode);
    let in_force = tls_mode::in_force(reported, current.as_deref(), world.statefulset.is_some(), spec.tls.mode);
    let generation = cluster.metadata.generation.unwrap_or_default();
    let plan = tls_mode::plan(spec.tls.mode, in_force, current.as_deref(), generation);
    let mut state = TlsState { plan, in_force, wanted: spec.tls.mode, certificates: None };
    if !spec.tls.mode.on() && !in_force.on() {
        return Ok((state, None));
    }
    let domain = ctx.settings.cluster_domain.as_str();
    let external = super::external::certificate_names(spec.expose.per_member.as_ref(), &world.member_services);
    match certificates::ensure(&ctx.client, names, cluster, owner, domain, &external, events).await? {
        Certificates::Ready(tls) => {
            world.verify_members_with(&tls.ca_file);
            let expiring = tls.expiring.clone();
            state.certificates = Some(*tls);
            Ok((state, expiring))
        }
        Certificates::Unusable(problem) => {
            // Nothing about TLS moves: the members keep the mode and template they have.
            state.plan = TlsPlan {
                conf: in_force,
                token: current.unwrap_or(state.plan.token),
                runtime: None,
                step: Some(format!("waiting for a usable certificate: {}", problem.message)),
            };
            Ok((state, Some(problem)))
        }
    }
}

/// With the set healthy and every member on the current template: reads what mode each member
/// runs, takes the run-time step the plan names on the members still below it, and returns the
/// TLS status, and whether to look again soon (a step under way that waits for nothing but
/// the members). A settled cluster (the mode it reported is the one wanted) is not asked again.
pub async fn settle<A: MongoAdmin>(
    admin: &A,
    cluster: &MongoCluster,
    state: &TlsState,
    members: &[Target],
    events: &Events<'_>,
) -> Result<(TlsStatus, bool), Error> {
    let reported = cluster.reported_tls().map(|t| t.mode);
    let mut mode = state.in_force;
    if reported != Some(state.wanted) || state.plan.runtime.is_some() {
        let mut modes = read_modes(admin, members).await?;
        if let Some(next) = state.plan.runtime {
            for (target, _) in modes.iter().filter(|(_, m)| *m < next) {
                admin.set_tls_mode(target, next).await.map_err(|source| Error::Mongo {
                    action: format!("setting tlsMode {} on {}", next.mongod(), target.address),
                    source,
                })?;
            }
            let from = modes.iter().map(|(_, m)| *m).min().unwrap_or(next);
            if from < next {
                let note =
                    format!("members moved from tlsMode {} to {} without a restart", from.mongod(), next.mongod());
                events.normal("TlsModeRaised", "SetParameter", note).await;
            }
            modes = read_modes(admin, members).await?;
        }
        mode = modes.iter().map(|(_, m)| *m).min().unwrap_or(state.in_force);
    }
    let mut step = (mode != state.wanted).then(|| state.plan.step.clone()).flatten();
    let mut soon = step.is_some();
    let served = match (state.certificates.as_ref(), mode.on()) {
        (Some(certificates), true) => {
            let previous = cluster.reported_tls().and_then(|t| t.served_certificate.clone());
            let (served, waiting) = rotate(admin, certificates, previous, members, events).await?;
            // Members still to present the current certificate come first; a CA renewal's
            // next step waits for them.
            soon = soon || waiting.is_some() || certificates.ca_moves_soon;
            step = waiting.or_else(|| certificates.ca_step.map(str::to_string)).or(step);
            served
        }
        _ => None,
    };
    let time = |t: time::OffsetDateTime| k8s_openapi::jiff::Timestamp::from_second(t.unix_timestamp()).ok().map(Time);
    let certificates = state.certificates.as_ref();
    tracing::debug!(cluster = %cluster.name_any(), mode = mode.mongod(), "TLS settled");
    let status = TlsStatus {
        mode,
        step,
        certificate_not_after: certificates.and_then(|c| time(c.server.not_after)),
        ca_not_after: certificates.and_then(|c| c.ca.as_ref()).and_then(|c| time(c.not_after)),
        served_certificate: served,
    };
    Ok((status, soon))
}

/// Makes every member present the certificate of the members' Secret, without a restart: a
/// member still presenting another is told to `rotateCertificates` (it reads its files again)
/// and looked at again. The kubelet replaces a mounted Secret's files up to a minute or so after
/// the Secret changed; a member that reloaded the old files is asked again at the next look.
/// Returns the fingerprint every member presents (None while some do not), and what is waited
/// for. Nothing is asked while the members were last seen presenting the current one.
async fn rotate<A: MongoAdmin>(
    admin: &A,
    certificates: &ClusterTls,
    previous: Option<String>,
    members: &[Target],
    events: &Events<'_>,
) -> Result<(Option<String>, Option<String>), Error> {
    let Some(wanted) = certificates.fingerprint.clone() else { return Ok((None, None)) };
    if previous.as_deref() == Some(wanted.as_str()) {
        return Ok((previous, None));
    }
    let mut behind = Vec::new();
    for target in members.iter().filter(|t| t.tls.is_some()) {
        let presented = admin.presented_certificate(target).await.ok();
        if presented.as_deref() == Some(wanted.as_str()) {
            continue;
        }
        admin.rotate_certificates(target).await.map_err(|source| Error::Mongo {
            action: format!("rotating the certificates of {}", target.address),
            source,
        })?;
        if admin.presented_certificate(target).await.ok().as_deref() == Some(wanted.as_str()) {
            let note = format!("{} presents the renewed certificate, without a restart", target.address);
            events.normal("CertificateRotated", "RotateCertificates", note).await;
        } else {
            behind.push(target.address.clone());
        }
    }
    if behind.is_empty() {
        return Ok((Some(wanted), None));
    }
    let waiting = format!(
        "waiting for the renewed certificate to reach the files of {} (the kubelet updates a mounted Secret within          about a minute)",
        behind.join(", ")
    );
    Ok((None, Some(waiting)))
}

async fn read_modes<A: MongoAdmin>(admin: &A, members: &[Target]) -> Result<Vec<(Target, TlsMode)>, Error> {
    let read = futures::future::join_all(members.iter().map(|t| admin.tls_mode(t))).await;
    members
        .iter()
        .zip(read)
        .map(|(t, r)| {
            r.map(|m| (t.clone(), m))
                .map_err(|source| Error::Mongo { action: format!("reading tlsMode of {}", t.address), source })
        })
        .collect()
}
