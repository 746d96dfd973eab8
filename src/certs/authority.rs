//! The cluster's certificate authority over its life, including its renewal. A CA is never
//! swapped for another in one step, which would cut off every member and client that trusts
//! the old one only. It goes through three states, each reached only once every member
//! presents the members' certificate issued in the one before (proof that it has read the
//! files of that state, which the kubelet replaces all at once):
//!
//! 1. **Distributing**: a new CA is made; members and clients are given both CAs to trust,
//!    while the members' certificate is still signed by the old one. This lasts at least a
//!    grace period, for clients that read their CA file only when they start to restart.
//! 2. **Switched**: the members' certificate is signed by the new CA; both are still trusted.
//! 3. **Steady**: the old CA is trusted no more.
//!
//! Pure: what the CA Secret holds in, what it should hold out.

use time::OffsetDateTime;

use super::Issued;

/// The CA as kept in the cluster's CA Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    /// The CA that signs the members' certificate.
    pub signing: Issued,
    /// While distributing: the CA that will sign next.
    pub next: Option<Issued>,
    /// Once switched: the CA that signed before, still trusted until every member presents a
    /// certificate from the new one.
    pub retired: Option<String>,
    /// When the renewal under way began.
    pub began: Option<OffsetDateTime>,
}

/// Where a CA renewal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Steady,
    Distributing,
    Switched,
}

/// The move to make now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Start a renewal with this new CA: trust both.
    Begin(Issued),
    /// Sign with the new CA.
    Switch,
    /// Stop trusting the old CA.
    Retire,
}

impl Authority {
    pub fn new(signing: Issued) -> Authority {
        Authority { signing, next: None, retired: None, began: None }
    }

    pub fn phase(&self) -> Phase {
        match (&self.next, &self.retired) {
            (Some(_), _) => Phase::Distributing,
            (None, Some(_)) => Phase::Switched,
            (None, None) => Phase::Steady,
        }
    }

    /// The CAs members and clients trust, the signing one first.
    pub fn bundle(&self) -> String {
        let mut pems = vec![self.signing.cert_pem.trim_end()];
        pems.extend(self.next.as_ref().map(|n| n.cert_pem.trim_end()));
        pems.extend(self.retired.as_deref().map(str::trim_end));
        let mut bundle = pems.join("\n");
        bundle.push('\n');
        bundle
    }

    /// What the status says while a renewal is under way.
    pub fn step(&self) -> Option<&'static str> {
        match self.phase() {
            Phase::Steady => None,
            Phase::Distributing => Some(
                "renewing the cluster's CA (1 of 2): members and clients are given the new CA to trust next to the \
                 old one",
            ),
            Phase::Switched => Some(
                "renewing the cluster's CA (2 of 2): the members' certificate is signed by the new CA; the old one \
                 is trusted until every member presents it",
            ),
        }
    }

    /// The change to make at `now`, if any. `settled`: every member presents the certificate
    /// now in the members' Secret, whose CA bundle is this one's. `due`: a renewal is due or
    /// was asked for; it only starts from a steady CA, and a new one is made only then
    /// (`new_ca`). The new CA signs once `grace` has passed since the renewal began.
    pub fn change(
        &self,
        (settled, due): (bool, bool),
        now: OffsetDateTime,
        grace: time::Duration,
        new_ca: impl FnOnce() -> Result<Issued, super::CertError>,
    ) -> Result<Option<Change>, super::CertError> {
        let granted = self.began.is_none_or(|began| now >= began + grace);
        Ok(match self.phase() {
            Phase::Steady if due => Some(Change::Begin(new_ca()?)),
            Phase::Steady => None,
            Phase::Distributing if settled && granted => Some(Change::Switch),
            Phase::Switched if settled => Some(Change::Retire),
            Phase::Distributing | Phase::Switched => None,
        })
    }

    /// This CA after `change`, made at `now`.
    pub fn after(self, change: Change, now: OffsetDateTime) -> Authority {
        match change {
            Change::Begin(next) => Authority { next: Some(next), retired: None, began: Some(now), ..self },
            Change::Switch => match self.next {
                Some(next) => {
                    Authority { signing: next, next: None, retired: Some(self.signing.cert_pem), began: self.began }
                }
                None => self,
            },
            Change::Retire => Authority { retired: None, began: None, ..self },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{inspect_bundle, issue_ca};
    use std::time::Duration;
    use time::OffsetDateTime;

    fn ca(unit: &str) -> Issued {
        issue_ca(unit, OffsetDateTime::now_utc(), Duration::from_secs(3_600)).unwrap()
    }

    #[test]
    fn a_renewal_trusts_both_cas_before_it_signs_with_the_new_one_and_drops_the_old_one_last() {
        let (old, new) = (ca("bank/ledger"), ca("bank/ledger"));
        let now = OffsetDateTime::now_utc();
        let grace = time::Duration::days(60);
        let steady = Authority::new(old.clone());
        assert_eq!(steady.step(), None);
        assert_eq!(steady.bundle(), old.cert_pem, "a CA alone is trusted as it was issued");
        // Nothing moves unless due, and a new CA is made only when the renewal begins.
        assert_eq!(steady.change((true, false), now, grace, || panic!("no CA is made")).unwrap(), None);
        let begin = steady.change((false, true), now, grace, || Ok(new.clone())).unwrap().unwrap();
        let distributing = steady.clone().after(begin, now);
        assert_eq!(distributing.phase(), Phase::Distributing);
        assert_eq!(distributing.began, Some(now));
        assert_eq!(distributing.signing, old, "still signed by the old CA");
        assert_eq!(distributing.bundle(), format!("{}\n{}\n", old.cert_pem.trim_end(), new.cert_pem.trim_end()));
        // It waits for every member to present the certificate issued with the bundle, and
        // for the clients' grace period.
        let later = now + grace;
        assert_eq!(distributing.change((false, true), later, grace, || panic!()).unwrap(), None);
        assert_eq!(
            distributing.change((true, true), later - time::Duration::SECOND, grace, || panic!()).unwrap(),
            None
        );
        let switch = distributing.change((true, false), later, grace, || panic!()).unwrap().unwrap();
        let switched = distributing.clone().after(switch, later);
        assert_eq!(switched.phase(), Phase::Switched);
        assert_eq!(switched.signing, new);
        assert_eq!(inspect_bundle(&switched.bundle()).unwrap().len(), 2, "the old CA still trusted");
        assert_eq!(switched.change((false, true), later, grace, || panic!()).unwrap(), None);
        let retire = switched.change((true, false), later, grace, || panic!()).unwrap().unwrap();
        let done = switched.clone().after(retire, later);
        assert_eq!(done, Authority::new(new.clone()));
        assert_eq!(done.bundle(), new.cert_pem);
    }
}
