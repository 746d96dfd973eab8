//! One reconcile of a MongoCluster, in stages: read, validate, apply the Kubernetes objects,
//! observe the replica set and take at most one replica-set step, users, rollout, status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::objects::{self, InternalCredentials};
use super::replica_set::{self, Seen};
use super::restore::{self, RestoreStep};
use super::rollout::{self, RestartReason, Rollout};
use super::status::{self, Progress};
use super::step_down::{self, Decision};
use super::tls_stage::{self, TlsState};
use super::upgrade::{self, FcvStep};
use super::users::Users;
use super::validate::{self, Problem};
use super::world::{self, World};
use crate::api::{
    self as requests, MongoCluster, MongoClusterStatus, RESTART_ANNOTATION, RestoreStatus, STEP_DOWN_ANNOTATION,
    StepDownResult, StepDownStatus, condition_type,
};
use crate::build::names::ClusterNames;
use crate::controller::error::{Error, KubeContext};
use crate::controller::{Context, Events, sooner};
use crate::mongo::{MongoAdmin, Target};
use crate::replset::{Observed, Step, StepDownReason, WaitReason, member_pod, plan};

/// How soon to look again after a step: long enough for the step to take effect.
const AFTER_STEP: Duration = Duration::from_secs(2);
/// How soon to look again while waiting on MongoDB (an election, a member catching up).
const WHILE_WAITING: Duration = Duration::from_secs(5);
/// How soon a cluster waiting for another project's API (cert-manager's, the Prometheus
/// Operator's) is looked at again.
const LOOK_AGAIN: Duration = Duration::from_secs(60);
/// The reasons of problems that end when another project's API is installed.
const WAITING_FOR_AN_API: [&str; 2] = [super::cert_manager::NOT_INSTALLED, super::pod_monitor::NOT_INSTALLED];
/// How often a paused or blocked cluster's members are looked at, only to report them.
const STANDING_STILL: Duration = Duration::from_secs(300);

/// What the replica-set part decided and saw.
struct Outcome {
    progress: Progress,
    observed: Option<Observed>,
    /// What the members run and the featureCompatibilityVersion, when this reconcile read them.
    versions: Option<Versions>,
    /// What happens to the featureCompatibilityVersion next.
    fcv_message: Option<String>,
    next: Option<Duration>,
    /// The restore's status, when the restore stage changed it.
    restore: Option<RestoreStatus>,
    /// A problem found on the way (a failed restore).
    problem: Option<Problem>,
    /// TLS as the members run it, when this reconcile read it.
    tls: Option<crate::api::TlsStatus>,
    /// The answer to a step-down request, when this reconcile gave one.
    step_down: Option<StepDownStatus>,
}

impl Outcome {
    fn new(progress: Progress, observed: Option<Observed>, next: Option<Duration>) -> Outcome {
        Outcome {
            progress,
            observed,
            versions: None,
            fcv_message: None,
            next,
            restore: None,
            problem: None,
            tls: None,
            step_down: None,
        }
    }
}

pub async fn reconcile<A: MongoAdmin>(cluster: Arc<MongoCluster>, ctx: Arc<Context<A>>) -> Result<Action, Error> {
    if cluster.metadata.deletion_timestamp.is_some() {
        // Owned objects go with it through garbage collection; volumes and Secrets are owned
        // only under `deletionPolicy: Delete`.
        return Ok(Action::await_change());
    }
    let ns = cluster.namespace().ok_or(Error::Incomplete("MongoCluster", "metadata.namespace"))?;
    let names = ClusterNames::new(&cluster.name_any(), &ns);
    let events = Events::new(&ctx.recorder, cluster.object_ref(&()));
    match reconcile_inner(&cluster, &ctx, &names, &events).await {
        Ok(action) => Ok(action),
        Err(error) => {
            events.warning(error.reason(), "Reconcile", error.to_string()).await;
            Err(error)
        }
    }
}

async fn reconcile_inner<A: MongoAdmin>(
    cluster: &MongoCluster,
    ctx: &Context<A>,
    names: &ClusterNames,
    events: &Events<'_>,
) -> Result<Action, Error> {
    let spec = &cluster.spec;
    let domain = ctx.settings.cluster_domain.as_str();
    let owner = cluster.controller_owner_ref(&()).ok_or(Error::Incomplete("MongoCluster", "metadata.uid"))?;

    // Read and validate.
    let mut world = world::read(&ctx.client, names, spec).await?;
    let restarts = requests::restart_requested(cluster.annotations().get(RESTART_ANNOTATION).map(String::as_str));
    for pod in world.pods.iter_mut().chain(world.arbiter.as_mut()) {
        pod.restart_requested = pod.uid.as_deref().is_some_and(|uid| restarts.contains(uid));
    }
    let mut problems = validate::validate(names, &ctx.settings.admin_policy, spec, cluster.status.as_ref(), &world);
    announce_problems(cluster, &problems, events).await;
    let blocked = problems.iter().any(|p| p.blocks_all);

    // When the members' certificate is due for renewal: the operator comes back for it then.
    let mut renew_at = None;
    // The PodMonitor kept, once looked at.
    let mut pod_monitor_kept = None;
    let mut outcome = if spec.paused || blocked {
        // Nothing is changed; the status still reports what the members say.
        let progress = if spec.paused { Progress::Paused } else { Progress::Blocked };
        // Its members are still looked at, over TLS where they speak it.
        if let Some(ca) = super::certificates::existing_ca_file(&ctx.client, names).await? {
            world.verify_members_with(&ca);
        }
        let (observed, versions) = match &world.internal_secret {
            Some(secret) => observe_only(ctx, names, &world, secret).await,
            None => (None, None),
        };
        // Looked at again now and then, so that its status (the members, the version, the
        // featureCompatibilityVersion) stays current while it stands still.
        let mut outcome = Outcome::new(progress, observed, Some(STANDING_STILL));
        outcome.versions = versions;
        outcome
    } else {
        let (creds, created, adopted) =
            objects::ensure_internal_secret(&ctx.client, names, spec, &owner, world.internal_secret.clone()).await?;
        if let Some(earlier) = adopted {
            // Its keyFile is the `__system` password: whoever had the earlier cluster's has
            // this one's, which the user should know.
            let note = format!(
                "adopted Secret {} from {earlier}: its keyFile and passwords are this cluster's; delete it before \
                 creating the cluster to start with new ones",
                names.internal_secret()
            );
            events.warning("SecretAdopted", "Adopt", note).await;
        }
        if created {
            events
                .normal(
                    "SecretCreated",
                    "Create",
                    format!("generated the keyFile and credentials in Secret {}", names.internal_secret()),
                )
                .await;
        }
        let (tls, tls_problem) = tls_stage::prepare(ctx, cluster, names, &owner, &mut world, events).await?;
        if let Some(problem) = tls_problem {
            if !announced(cluster, &problem.message) {
                events.warning(problem.reason, "Certificates", problem.message.clone()).await;
            }
            problems.push(problem);
        }
        renew_at = tls.certificates.as_ref().and_then(|c| c.renew_at);
        let seen = observe(ctx, names, &world, &creds).await;
        let observed_set = seen.as_ref().ok().and_then(|s| s.observation.set.as_deref());
        let replicas = match observed_set {
            Some(obs) => {
                replica_set::highest_member_ordinal(names, obs).map_or(spec.members, |o| spec.members.max(o + 1))
            }
            None => spec.members,
        };
        // The arbiter's Pod stays until the arbiter has left the set, and while the set cannot
        // be looked at.
        let keep_arbiter = spec.arbiter.enabled
            || match observed_set {
                Some(obs) => obs.config.members.iter().any(|m| m.is_arbiter()),
                None => world.arbiter_statefulset.is_some(),
            };
        // Before the client Service is applied: its selector wants the label.
        super::client_pods::label(&ctx.client, names, &spec.member_roles, &world.pods).await?;
        let certificates = tls.certificates.as_ref();
        let arbiter_tls = crate::build::statefulset::arbiter_tls_key(
            tls.plan.conf,
            certificates.and_then(|c| c.fingerprint.as_deref()),
            certificates.map(|c| c.ca_bundle.as_str()),
        );
        let applied = objects::apply_all(
            &ctx.client,
            names,
            spec,
            &owner,
            &objects::Members {
                operator_image: &ctx.settings.operator_image,
                operator: &ctx.settings.operator_peer,
                resolver: &ctx.settings.cluster_dns,
                replicas,
                tls: &tls.plan,
                current: world.statefulset.as_ref(),
                existing_member_services: &world.member_services,
                exporter_credentials: &creds.monitor_digest,
                arbiter: keep_arbiter,
                arbiter_exists: world.arbiter_statefulset.is_some(),
                arbiter_tls: &arbiter_tls,
            },
        )
        .await?;
        let revision = world::update_revision(&applied.members);
        let arbiter_revision = applied.arbiter.as_ref().and_then(world::update_revision);
        let (kept, monitor_problem) = super::pod_monitor::ensure(&ctx.client, names, cluster, &owner).await?;
        pod_monitor_kept = Some(kept);
        if let Some(problem) = monitor_problem {
            if !announced(cluster, &problem.message) {
                events.warning(problem.reason, "Monitoring", problem.message.clone()).await;
            }
            problems.push(problem);
        }
        let refused = objects::volumes(&ctx.client, names, spec, &owner).await?;
        if !refused.is_empty() {
            let message = format!(
                "cannot grow the volumes to {} (does the StorageClass allow volume expansion?): {}",
                spec.storage.size,
                refused.join("; ")
            );
            if !announced(cluster, &message) {
                events.warning("VolumeExpansionRefused", "Resize", message.clone()).await;
            }
            problems.push(Problem { reason: "VolumeExpansionRefused", message, blocks_all: false, secret: None });
        }
        match seen {
            Ok(seen) => {
                let stage = Stage {
                    cluster,
                    ctx,
                    names,
                    world: &world,
                    creds: &creds,
                    owner: &owner,
                    events,
                    revision,
                    arbiter_revision,
                    tls: &tls,
                };
                stage.run(seen).await?
            }
            Err(error) if error.is_transient() => {
                let revisions =
                    rollout::Revisions { members: revision.as_deref(), arbiter: arbiter_revision.as_deref() };
                unreachable(ctx, names, &world, &revisions, events, &error).await?
            }
            Err(error) => return Err(error),
        }
    };

    problems.extend(outcome.problem.take());
    // Another project's API being installed changes nothing the operator watches: a cluster
    // waiting for one is looked at again now and then.
    if problems.iter().any(|p| WAITING_FOR_AN_API.contains(&p.reason)) {
        let again = time::OffsetDateTime::now_utc() + LOOK_AGAIN;
        renew_at = Some(renew_at.map_or(again, |at: time::OffsetDateTime| at.min(again)));
    }
    // A wait only the user can end: one Warning Event, not one per look.
    if let Progress::Stuck(reason, message) = &outcome.progress
        && !announced(cluster, message)
    {
        events.warning(reason, "Reconcile", message.clone()).await;
    }
    let status = status::build(&status::Inputs {
        names,
        domain,
        spec,
        generation: cluster.metadata.generation,
        previous: cluster.status.as_ref(),
        pods: &world.mongods(),
        observed: outcome.observed.as_ref(),
        progress: &outcome.progress,
        problems: &problems,
        versions: outcome
            .versions
            .as_ref()
            .map(|v| status::SeenVersions { common: v.common(), fcv: v.fcv.as_ref().map(|f| f.version.clone()) }),
        feature_compatibility_message: outcome.fcv_message.clone(),
        restore: outcome.restore.clone(),
        tls: outcome.tls.clone(),
        pod_monitor: pod_monitor_kept,
        step_down: outcome.step_down.clone(),
        now: Timestamp::now(),
    });
    write_status(ctx, cluster, names, &status).await?;
    // A member recovering (a restart, an initial sync) changes nothing in Kubernetes, so while
    // the set is not whole the operator looks again itself; a whole, settled set waits for a
    // change.
    let whole = status.conditions.iter().any(|c| c.type_ == condition_type::READY && c.status == "True");
    let settle = (!whole && outcome.observed.is_some() && !spec.paused && !blocked).then_some(WHILE_WAITING);
    let renewal = renew_at.map(|at| {
        let left = (at - time::OffsetDateTime::now_utc()).whole_milliseconds();
        Duration::from_millis(u64::try_from(left).unwrap_or(0).max(1_000))
    });
    Ok(match sooner(outcome.next.or(settle), renewal) {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// No member answers. A Pod on an old template that is not ready serves nothing and is
/// replaced (a lone member whose broken template was reverted comes back this way); a Pod on
/// the current template that never became ready makes the rollout stuck.
async fn unreachable<A: MongoAdmin>(
    ctx: &Context<A>,
    names: &ClusterNames,
    world: &World,
    revisions: &rollout::Revisions<'_>,
    events: &Events<'_>,
    error: &Error,
) -> Result<Outcome, Error> {
    let nobody: &dyn Fn(&world::MemberPod) -> bool = &|_| false;
    let pods = world.mongods();
    if let Some(p) = rollout::not_serving(&pods, revisions, nobody) {
        let (progress, next) =
            restart_member(ctx, names, events, &p.name, p.uid.clone(), RestartReason::NotServing).await?;
        return Ok(Outcome::new(progress, None, next));
    }
    if let Some(Rollout::Stuck { message, .. }) = rollout::stuck(&pods, revisions, nobody, Timestamp::now()) {
        return Ok(Outcome::new(Progress::Stuck("RolloutStuck", message), None, Some(WHILE_WAITING)));
    }
    Ok(Outcome::new(Progress::Waiting("MembersUnreachable", error.to_string()), None, Some(WHILE_WAITING)))
}

/// Whether the Degraded condition already says this.
fn announced(cluster: &MongoCluster, message: &str) -> bool {
    cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition_type::DEGRADED))
        .is_some_and(|c| c.message == message)
}

/// A Warning Event for each problem not already reported in the Degraded condition.
async fn announce_problems(cluster: &MongoCluster, problems: &[Problem], events: &Events<'_>) {
    for p in problems.iter().filter(|p| !announced(cluster, &p.message)) {
        match &p.secret {
            Some(secret) => {
                events.warning_about(events.related("Secret", secret), p.reason, "Validate", p.message.clone()).await
            }
            None => events.warning(p.reason, "Validate", p.message.clone()).await,
        }
    }
}

async fn observe<A: MongoAdmin>(
    ctx: &Context<A>,
    names: &ClusterNames,
    world: &World,
    creds: &InternalCredentials,
) -> Result<Seen, Error> {
    replica_set::observe_set(&ctx.admin, names, &ctx.settings.cluster_domain, &world.mongods(), creds).await
}

/// Observation for the status of a paused or blocked cluster (the set, the members' versions
/// and the featureCompatibilityVersion); failures only leave it empty.
async fn observe_only<A: MongoAdmin>(
    ctx: &Context<A>,
    names: &ClusterNames,
    world: &World,
    secret: &k8s_openapi::api::core::v1::Secret,
) -> (Option<Observed>, Option<Versions>) {
    let Ok(creds) = objects::credentials(secret) else { return (None, None) };
    let Ok(seen) = observe(ctx, names, world, &creds).await else { return (None, None) };
    let Some(obs) = seen.observation.set.map(|b| *b) else { return (None, None) };
    let domain = &ctx.settings.cluster_domain;
    let pods = world.mongods();
    let target = |host: &str| replica_set::target_of(names, domain, &pods, host, &creds, seen.as_system);
    let targets: Vec<Target> = obs.config.members.iter().filter_map(|m| target(&m.host)).collect();
    let primary = obs.primary.as_deref().and_then(target);
    let versions = read_versions(&ctx.admin, &targets, primary.as_ref()).await;
    (Some(obs), Some(versions))
}

/// What each member runs and the featureCompatibilityVersion.
pub struct Versions {
    /// `buildInfo.version` of each member of the set, None where it did not answer.
    binaries: Vec<Option<String>>,
    /// From the primary.
    fcv: Option<crate::mongo::Fcv>,
}

impl Versions {
    /// The version every member runs, when they all run the same one.
    fn common(&self) -> Option<String> {
        let first = self.binaries.first()?.clone()?;
        self.binaries.iter().all(|b| b.as_deref() == Some(first.as_str())).then_some(first)
    }
}

/// Reads every member's version and the primary's featureCompatibilityVersion; a member that
/// does not answer leaves a gap (and so no common version).
async fn read_versions<A: MongoAdmin>(admin: &A, members: &[Target], primary: Option<&Target>) -> Versions {
    let binaries = futures::future::join_all(members.iter().map(|t| admin.server_version(t))).await;
    let fcv = match primary {
        Some(p) => admin.feature_compatibility_version(p).await.ok(),
        None => None,
    };
    Versions { binaries: binaries.into_iter().map(Result::ok).collect(), fcv }
}

/// How a wait shows in status, and when to look again.
fn wait_reason(reason: &WaitReason) -> (Progress, Duration) {
    let (r, m, after) = wait_text(reason);
    let progress = match reason {
        // No end without the user: Stalled.
        WaitReason::MembersRemoved { .. } => Progress::Stuck(r, m),
        _ => Progress::Waiting(r, m),
    };
    (progress, after)
}

fn wait_text(reason: &WaitReason) -> (&'static str, String, Duration) {
    match reason {
        WaitReason::MembersNotReady { hosts } => {
            ("MembersNotReady", format!("waiting for mongod to answer on {}", hosts.join(", ")), WHILE_WAITING)
        }
        WaitReason::MembersRemoved { hosts } => (
            "MembersRemoved",
            format!(
                "{} hold a replica-set config that does not list them (REMOVED), and no member of the set \
                 answers; the set is never initiated again. Find the members of the set (kubectl get pods), \
                 or if the config's host names no longer match the Pods (a changed namespace or cluster domain), \
                 see docs/cluster.md#removed-members",
                hosts.join(", ")
            ),
            WHILE_WAITING,
        ),
        WaitReason::NoPrimary => ("NoPrimary", "waiting for MongoDB to elect a primary".into(), AFTER_STEP),
        WaitReason::ConfigNotCommitted => {
            ("ConfigNotCommitted", "waiting for a majority to commit the last config".into(), AFTER_STEP)
        }
        WaitReason::MemberCatchingUp { host } => {
            ("MemberCatchingUp", format!("waiting for {host} to catch up before it gets a vote"), WHILE_WAITING)
        }
        WaitReason::NoCaughtUpSecondary { primary } => (
            "NoCaughtUpSecondary",
            format!("{primary} must step down, but no electable secondary has caught up"),
            WHILE_WAITING,
        ),
        WaitReason::WouldLoseMajority { host } => (
            "WouldLoseMajority",
            format!("changing {host} now would leave fewer healthy voters than a majority"),
            WHILE_WAITING,
        ),
        // The Service's status change wakes the reconcile; the requeue is only a safety net.
        WaitReason::ExternalAddressPending { hosts } => (
            "ExternalAddressPending",
            format!(
                "{} join the set once their load balancers have a host name (status.loadBalancer.ingress of \
                 their Services): the other members announce theirs to clients outside Kubernetes",
                hosts.iter().map(|h| member_pod(h)).collect::<Vec<_>>().join(", ")
            ),
            Duration::from_secs(300),
        ),
    }
}

/// What the replica-set stage works with.
struct Stage<'a, A: MongoAdmin> {
    cluster: &'a MongoCluster,
    ctx: &'a Context<A>,
    names: &'a ClusterNames,
    world: &'a World,
    creds: &'a InternalCredentials,
    owner: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    events: &'a Events<'a>,
    revision: Option<String>,
    arbiter_revision: Option<String>,
    tls: &'a TlsState,
}

impl<A: MongoAdmin> Stage<'_, A> {
    async fn run(&self, seen: Seen) -> Result<Outcome, Error> {
        let Stage { cluster, ctx, names, world, creds, events, .. } = *self;
        let spec = &cluster.spec;
        let domain = ctx.settings.cluster_domain.as_str();
        let set_name = names.replica_set();
        let desired = replica_set::desired(names, domain, spec, &seen.observation, &world.member_services);
        let pods = world.mongods();
        let target = |host: &str| replica_set::target_of(names, domain, &pods, host, creds, seen.as_system);

        let Some(mut obs) = seen.observation.set.map(|b| *b) else {
            let step = plan(&set_name, &desired, None, None);
            return match &step {
                // On the member the config lists first: the planner puts an electable one there.
                Step::Initiate(config) => {
                    let first = config
                        .members
                        .first()
                        .and_then(|m| target(&m.host))
                        .ok_or(Error::Incomplete("the first member", "Pod IP"))?;
                    let done = replica_set::execute(&ctx.admin, &step, &first, None, creds).await?;
                    let done = done.ok_or(Error::Incomplete("initiation", "result"))?;
                    events.normal(done.reason, "ReplicaSetStep", done.message.clone()).await;
                    Ok(Outcome::new(Progress::Acting(done.reason, done.message), None, Some(AFTER_STEP)))
                }
                Step::Wait(reason) => {
                    let (progress, after) = wait_reason(reason);
                    Ok(Outcome::new(progress, None, Some(after)))
                }
                _ => Ok(Outcome::new(Progress::Waiting("Observing", format!("{step:?}")), None, Some(WHILE_WAITING))),
            };
        };

        let primary = obs.primary.as_deref().and_then(target);
        if seen.as_system {
            // The set exists but the operator's own user does not (or lost its password).
            let Some(p) = primary.as_ref() else {
                return Ok(Outcome::new(
                    Progress::Waiting("NoPrimary", "waiting for a primary to create the operator's user".into()),
                    Some(obs),
                    Some(AFTER_STEP),
                ));
            };
            replica_set::ensure_operator_user(&ctx.admin, p, creds).await?;
            objects::mark_operator_applied(&ctx.client, names, &creds.operator_digest).await?;
            events.normal("OperatorUserReady", "CreateUser", "the operator's own user is in place").await;
            return Ok(Outcome::new(
                Progress::Acting("OperatorUserReady", "created the operator's own user".into()),
                Some(obs),
                Some(Duration::from_millis(200)),
            ));
        }

        // The cluster-wide default write concern, only where an arbiter makes it matter.
        if let Some(p) = primary.as_ref()
            && (spec.arbiter.enabled || obs.config.members.iter().any(|m| m.is_arbiter()))
        {
            obs.default_write_concern = ctx
                .admin
                .default_write_concern(p)
                .await
                .doing(|| "reading the cluster-wide default write concern".into())?;
        }

        let host_of = |p: &world::MemberPod| p.host(names, domain);
        let revisions =
            rollout::Revisions { members: self.revision.as_deref(), arbiter: self.arbiter_revision.as_deref() };
        // The members the spec keeps, and the arbiter while it is in the set or wanted.
        let members_in_range: Vec<_> = pods.iter().filter(|p| p.arbiter || p.ordinal < spec.members).cloned().collect();
        let rollout = rollout::next(&members_in_range, &revisions, &obs, &host_of, Timestamp::now());
        // A Pod on an old template that serves nothing is replaced whatever else waits: that
        // loses no availability, and it is how a reverted, broken template is rolled back.
        if let Rollout::Restart { pod, uid, why: why @ RestartReason::NotServing } = &rollout {
            let done = restart_member(ctx, names, events, pod, uid.clone(), *why).await?;
            return Ok(Outcome::new(done.0, Some(obs), done.1));
        }
        // A rollout's step-down comes first; a person's request is answered after it.
        let asked = requests::step_down_requested(cluster.annotations().get(STEP_DOWN_ANNOTATION).map(String::as_str));
        let host_of_pod = |pod: &str| world.pods.iter().find(|p| p.name == pod).map(host_of);
        let decision = match &rollout {
            Rollout::StepDownPrimary { .. } => Decision::None,
            _ => step_down::decide(asked.as_ref(), cluster.status.as_ref(), &obs, &host_of_pod),
        };
        let stepping_down = match (&rollout, &decision) {
            (Rollout::StepDownPrimary { host }, _) => Some((host.as_str(), StepDownReason::Restart)),
            (_, Decision::StepDown(host)) => Some((host.as_str(), StepDownReason::Requested)),
            _ => None,
        };
        let answer = |result: StepDownResult, message: String| {
            asked.as_ref().map(|r| StepDownStatus {
                request: r.token.to_string(),
                result,
                message,
                time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
            })
        };
        let mut answered = None;
        if let Decision::Answer(result, message) = &decision {
            if *result == StepDownResult::Refused {
                events.warning("StepDownRefused", "StepDown", message.clone()).await;
            } else {
                events.normal("StepDownNotNeeded", "StepDown", message.clone()).await;
            }
            answered = answer(*result, message.clone());
        }
        let step = plan(&set_name, &desired, Some(&obs), stepping_down);
        let requested = matches!(step, Step::StepDown { reason: StepDownReason::Requested, .. });
        let mut outcome = self.act(step, obs, primary, &members_in_range, rollout, seen.as_system).await?;
        // A requested step-down the planner took is answered with what it did.
        if let (true, Progress::Acting(_, message)) = (requested, &outcome.progress) {
            answered = answer(StepDownResult::SteppedDown, message.clone());
        }
        outcome.step_down = answered;
        Ok(outcome)
    }

    /// Takes the planner's step (or, when the set is in sync, the users, the restore, the
    /// rollout and the featureCompatibilityVersion).
    async fn act(
        &self,
        step: Step,
        obs: Observed,
        primary: Option<Target>,
        members_in_range: &[world::MemberPod],
        rollout: Rollout,
        as_system: bool,
    ) -> Result<Outcome, Error> {
        let Stage { cluster, ctx, names, world, creds, owner, events, .. } = *self;
        let spec = &cluster.spec;
        let domain = ctx.settings.cluster_domain.as_str();
        let pods = world.mongods();
        let target = |host: &str| replica_set::target_of(names, domain, &pods, host, creds, as_system);
        match &step {
            Step::Reconfig { .. } | Step::StepDown { .. } | Step::Initiate(_) | Step::SetDefaultWriteConcern(_) => {
                let first = primary.clone().ok_or(Error::Incomplete("replica set", "primary"))?;
                let done = replica_set::execute(&ctx.admin, &step, &first, primary.as_ref(), creds).await?;
                let Some(done) = done else {
                    return Ok(Outcome::new(
                        Progress::Waiting("NoPrimary", "no primary".into()),
                        Some(obs),
                        Some(AFTER_STEP),
                    ));
                };
                ctx.metrics.replica_set_step(done.reason);
                match &done.member {
                    Some(pod) => {
                        events
                            .normal_about(
                                events.related("Pod", pod),
                                done.reason,
                                "ReplicaSetStep",
                                done.message.clone(),
                            )
                            .await
                    }
                    None => events.normal(done.reason, "ReplicaSetStep", done.message.clone()).await,
                }
                Ok(Outcome::new(Progress::Acting(done.reason, done.message), Some(obs), Some(AFTER_STEP)))
            }
            Step::Wait(reason) => {
                let (progress, after) = wait_reason(reason);
                Ok(Outcome::new(progress, Some(obs), Some(after)))
            }
            Step::InSync => {
                let Some(p) = primary else {
                    return Ok(Outcome::new(
                        Progress::Waiting("NoPrimary", "no primary".into()),
                        Some(obs),
                        Some(AFTER_STEP),
                    ));
                };
                if creds.agents_applied.as_deref() != Some(creds.agents_digest.as_str()) {
                    replica_set::ensure_agent_users(&ctx.admin, &p, creds).await?;
                    objects::mark_agents_applied(&ctx.client, names, &creds.agents_digest).await?;
                    events.normal("AgentUsersReady", "CreateUser", "the backup user (role backup) is in place").await;
                    return Ok(Outcome::new(
                        Progress::Acting("AgentUsersReady", "created the backup user".into()),
                        Some(obs),
                        Some(AFTER_STEP),
                    ));
                }
                let inputs = restore::Inputs { cluster, ctx, names, creds, owner, primary: &p, events };
                let restored = match restore::step(&inputs).await? {
                    RestoreStep::Done(status) => status,
                    RestoreStep::Holding { progress, problem, status, next } => {
                        let mut outcome = Outcome::new(progress, Some(obs), next);
                        outcome.restore = Some(status);
                        outcome.problem = problem;
                        return Ok(outcome);
                    }
                };
                // Clients are told to use TLS once every member accepts it, unless it is going off.
                let tls = self.tls;
                let tls_ca = tls
                    .certificates
                    .as_ref()
                    .map(|c| c.ca_bundle.as_str())
                    .filter(|_| tls.in_force.on() && tls.wanted.on());
                let users = Users {
                    client: &ctx.client,
                    admin: &ctx.admin,
                    names,
                    spec,
                    owner,
                    domain,
                    primary: &p,
                    events,
                    tls_ca,
                    external_hosts: super::external::all_known(
                        spec.expose.per_member.as_ref(),
                        names,
                        spec.members,
                        &world.member_services,
                    ),
                };
                let changed = users.reconcile(world).await?;
                let mut outcome = if changed > 0 {
                    let message = format!("{changed} user change(s) made");
                    Outcome::new(Progress::Acting("UsersUpdated", message), Some(obs), Some(AFTER_STEP))
                } else {
                    let members: Vec<Target> = obs.config.members.iter().filter_map(|m| target(&m.host)).collect();
                    let versions = read_versions(&ctx.admin, &members, Some(&p)).await;
                    // The run-time TLS commands need a login, which no client gets on the
                    // arbiter: it is restarted instead (its template follows the TLS files
                    // and mode, `statefulset::arbiter`).
                    let members: Vec<Target> =
                        obs.config.members.iter().filter(|m| !m.is_arbiter()).filter_map(|m| target(&m.host)).collect();
                    let healthy = members_in_range.iter().all(|m| m.ready && !m.terminating)
                        && obs.config.members.iter().all(|m| obs.caught_up(&m.host));
                    let inputs =
                        InSync { cluster, names, primary: &p, events, healthy, members: &members, tls: self.tls };
                    in_sync(ctx, &inputs, rollout, obs, versions).await?
                };
                outcome.restore = restored;
                Ok(outcome)
            }
        }
    }
}

/// What the last stage reads besides the rollout.
struct InSync<'a> {
    cluster: &'a MongoCluster,
    names: &'a ClusterNames,
    primary: &'a Target,
    events: &'a Events<'a>,
    /// Every member healthy and caught up, every Pod ready.
    healthy: bool,
    /// Every data-bearing member of the set (the run-time TLS commands are not for the arbiter).
    members: &'a [Target],
    tls: &'a TlsState,
}

/// Membership and users match the spec: restart the next stale member, or settle the
/// featureCompatibilityVersion.
async fn in_sync<A: MongoAdmin>(
    ctx: &Context<A>,
    i: &InSync<'_>,
    rollout: Rollout,
    obs: Observed,
    versions: Versions,
) -> Result<Outcome, Error> {
    let mut outcome = match rollout {
        Rollout::Restart { pod, uid, why } => {
            let (progress, next) = restart_member(ctx, i.names, i.events, &pod, uid, why).await?;
            Outcome::new(progress, Some(obs), next)
        }
        Rollout::Wait(message) => {
            Outcome::new(Progress::Waiting("RollingOut", message), Some(obs), Some(WHILE_WAITING))
        }
        Rollout::Stuck { message, .. } => {
            Outcome::new(Progress::Stuck("RolloutStuck", message), Some(obs), Some(WHILE_WAITING))
        }
        Rollout::StepDownPrimary { host } => Outcome::new(
            Progress::Waiting("RollingOut", format!("waiting to step down {host}")),
            Some(obs),
            Some(WHILE_WAITING),
        ),
        Rollout::Done => {
            // A member catching up or a Pod becoming ready again changes nothing the operator
            // watches, so what waits for health (the TLS steps, the featureCompatibilityVersion)
            // is looked at again here: a set can be Ready while one member still lags.
            let recheck = (!i.healthy).then_some(WHILE_WAITING);
            let mut outcome = Outcome::new(Progress::InSync, Some(obs), recheck);
            if i.healthy {
                let (tls, soon) = tls_stage::settle(&ctx.admin, i.cluster, i.tls, i.members, i.events).await?;
                if soon {
                    // The next step (a run-time move, the next rolling restart, members that
                    // have yet to load a renewed certificate, a CA renewal's next move)
                    // follows; a CA renewal's grace period is waited for through `renew_at`.
                    outcome.next = Some(WHILE_WAITING);
                }
                outcome.tls = Some(tls);
            }
            if let Some(fcv) = &versions.fcv {
                settle_fcv(ctx, i, &versions.binaries, fcv, &mut outcome).await?;
            }
            outcome
        }
    };
    outcome.versions = Some(versions);
    Ok(outcome)
}

/// Takes the featureCompatibilityVersion step `upgrade::decide` names, if any.
async fn settle_fcv<A: MongoAdmin>(
    ctx: &Context<A>,
    i: &InSync<'_>,
    binaries: &[Option<String>],
    fcv: &crate::mongo::Fcv,
    outcome: &mut Outcome,
) -> Result<(), Error> {
    let previous = i.cluster.status.as_ref();
    let now = Timestamp::now();
    let release_since = upgrade::common_release(binaries).ok().map(|release| {
        upgrade::release_since(
            previous.and_then(|p| p.version.as_deref()),
            previous.and_then(|p| p.version_since.as_ref()).map(|t| t.0),
            &release,
            now,
        )
    });
    let inputs = upgrade::Inputs {
        spec: &i.cluster.spec.feature_compatibility,
        binaries,
        fcv,
        healthy: i.healthy,
        release_since,
        now,
    };
    match upgrade::decide(&inputs) {
        FcvStep::Keep { message, recheck } => {
            outcome.fcv_message = Some(message);
            // Whatever else asked to look again sooner (a TLS step) keeps its time.
            outcome.next = sooner(outcome.next, recheck);
        }
        FcvStep::Set { version, confirm, message } => {
            ctx.admin
                .set_feature_compatibility_version(i.primary, &version, confirm)
                .await
                .doing(|| format!("setting featureCompatibilityVersion {version}"))?;
            i.events.normal("FeatureCompatibilityVersionSet", "Upgrade", message.clone()).await;
            outcome.progress = Progress::Acting("FeatureCompatibilityVersionSet", message.clone());
            outcome.fcv_message = Some(message);
            outcome.next = Some(AFTER_STEP);
        }
        FcvStep::Refuse(message) => {
            outcome.fcv_message = Some(message.clone());
            outcome.problem = Some(Problem {
                reason: "FeatureCompatibilityVersionRefused",
                message,
                blocks_all: false,
                secret: None,
            });
        }
    }
    Ok(())
}

/// Deletes a member's Pod (with its UID as precondition) so that it comes back on the latest
/// template, with an Event that says why.
async fn restart_member<A: MongoAdmin>(
    ctx: &Context<A>,
    names: &ClusterNames,
    events: &Events<'_>,
    pod: &str,
    uid: Option<String>,
    why: RestartReason,
) -> Result<(Progress, Option<Duration>), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let dp =
        DeleteParams { preconditions: Some(Preconditions { uid, resource_version: None }), ..DeleteParams::default() };
    match api.delete(pod, &dp).await {
        Ok(_) => {}
        // Gone already, or replaced since it was read: the next reconcile sees it.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(source) => return Err(Error::Kube { action: format!("restarting member {pod}"), source }),
    }
    let (reason, message) = match why {
        RestartReason::Secondary => ("MemberRestarting", format!("restarting {pod} on the new Pod template")),
        RestartReason::Requested => ("MemberRestarting", format!("restarting {pod} as requested")),
        RestartReason::NotServing => (
            "MemberReplaced",
            format!("replacing {pod}: it runs an old Pod template and serves nothing (not ready, not in the set)"),
        ),
        RestartReason::WithoutFailover => (
            "RestartingWithoutFailover",
            format!(
                "restarting {pod} on the new Pod template without a failover: no other member can be primary, so \
                 the database is unavailable until {pod} is back"
            ),
        ),
    };
    let related = events.related("Pod", pod);
    if why == RestartReason::WithoutFailover {
        events.warning_about(related, reason, "Rollout", message.clone()).await;
    } else {
        events.normal_about(related, reason, "Rollout", message.clone()).await;
    }
    Ok((Progress::Acting(reason, message), Some(AFTER_STEP)))
}

async fn write_status<A: MongoAdmin>(
    ctx: &Context<A>,
    cluster: &MongoCluster,
    names: &ClusterNames,
    status: &MongoClusterStatus,
) -> Result<(), Error> {
    if cluster.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<MongoCluster> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&names.cluster, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .doing(|| format!("writing the status of {}", names.cluster))?;
    Ok(())
}
