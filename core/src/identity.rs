//! Who is asking: Kubernetes itself, a GitOps agent, or someone else.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::Config;
use crate::owner::{OwnerInfo, OwnerKind, OwnerRef};

/// The request's `userInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct UserInfo {
    pub username: String,
    pub groups: Vec<String>,
    /// What the authenticator adds: a bound token's `authentication.kubernetes.io/credential-id`,
    /// `pod-name`, …
    pub extra: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Kubernetes' own components: never blocked.
    System,
    /// One of Flux's controllers acting as itself.
    FluxController,
    /// One of Argo CD's agents acting as itself.
    ArgoController,
    /// A configured extra agent (`agents.users` / `agents.groups`).
    Agent,
    /// Anyone else: people, CI, tenant service accounts (which may still be the agent for the
    /// owners that impersonate them).
    Other,
}

impl UserInfo {
    /// Whether the username is a service account's that the API server vouches for: named
    /// `system:serviceaccount:<ns>:<name>` *and* in the groups every service account token carries
    /// (`system:serviceaccounts`, `system:serviceaccounts:<ns>`). A static-token or OIDC user who is
    /// merely called that has neither group.
    pub fn is_genuine_service_account(&self) -> bool {
        let Some((ns, _)) = service_account(&self.username) else {
            return false;
        };
        let all = "system:serviceaccounts";
        let own = format!("system:serviceaccounts:{ns}");
        self.groups.iter().any(|g| g == all) && self.groups.contains(&own)
    }

    /// Whether the request comes with a credential of the account's own — a token minted for it
    /// (`credential-id`) or the token of a Pod running as it (`pod-name`) — rather than through
    /// impersonation, which is how Flux and Argo CD act as a tenant's account. (Clusters before
    /// 1.29 do not say so; there, nobody may hold such a token: see the README's premises.)
    pub fn has_own_credential(&self) -> bool {
        [
            "authentication.kubernetes.io/credential-id",
            "authentication.kubernetes.io/pod-name",
        ]
        .iter()
        .any(|k| self.extra.contains_key(*k))
    }

    /// Named like a service account without being one: only ever an impostor.
    pub fn is_impostor(&self) -> bool {
        service_account(&self.username).is_some() && !self.is_genuine_service_account()
    }
}

impl Identity {
    pub fn of(user: &UserInfo, config: &Config) -> Identity {
        // A name like a service account's counts for nothing without the groups that prove it.
        let username_counts = !user.is_impostor();
        let in_list = |users: &[String], groups: &[String]| {
            (username_counts && users.contains(&user.username))
                || user.groups.iter().any(|g| groups.contains(g))
        };
        if in_list(&config.system.users, &config.system.groups) {
            return Identity::System;
        }
        if let Some((ns, name)) = service_account(&user.username).filter(|_| username_counts) {
            if ns == config.flux.namespace && config.flux.controllers.iter().any(|c| c == name) {
                return Identity::FluxController;
            }
            if ns == config.argocd.namespace && config.argocd.controllers.iter().any(|c| c == name)
            {
                return Identity::ArgoController;
            }
        }
        if in_list(&config.agents.users, &config.agents.groups) {
            return Identity::Agent;
        }
        Identity::Other
    }

    /// Whether this user is the agent for `owner`. `info` is what the cluster says about the owner
    /// (its impersonated service account); a tenant account is the agent for its own owner only.
    ///
    /// The caller still has to check that a tenant's owner comes from Git
    /// ([`crate::custody::traces_to_root`]): an account named by a hand-made owner is nobody's agent.
    pub fn is_agent_for(
        &self,
        user: &UserInfo,
        owner: &OwnerRef,
        info: Option<&OwnerInfo>,
    ) -> bool {
        match self {
            Identity::System | Identity::Agent => true,
            Identity::FluxController => owner.kind.is_flux() || owner.kind == OwnerKind::Namespace,
            Identity::ArgoController => {
                owner.kind == OwnerKind::Application || owner.kind == OwnerKind::Namespace
            }
            Identity::Other => {
                owner.kind != OwnerKind::Namespace
                    && user.is_genuine_service_account()
                    && info
                        .and_then(|i| i.service_account.as_deref())
                        .is_some_and(|sa| sa == user.username)
            }
        }
    }
}

/// `system:serviceaccount:<ns>:<name>` → `(ns, name)`.
pub fn service_account(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    rest.split_once(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user; a service-account name with no groups given gets the groups the API server gives
    /// every real service account (impostors in the tables name their groups).
    fn user(name: &str, groups: &[&str]) -> UserInfo {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if let Some((ns, _)) = service_account(name)
            && groups.is_empty()
        {
            groups = vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ];
        }
        UserInfo {
            username: name.into(),
            groups,
            ..Default::default()
        }
    }

    #[test]
    fn identity_table() {
        let mut cfg = Config::default();
        cfg.agents.users.push("ci-deployer".into());
        cfg.agents.groups.push("gitops-agents".into());
        let cases = [
            ("system:apiserver", &[][..], Identity::System),
            (
                "system:serviceaccount:kube-system:generic-garbage-collector",
                &[],
                Identity::System,
            ),
            (
                "system:serviceaccount:kube-system:namespace-controller",
                &[],
                Identity::System,
            ),
            ("system:kube-controller-manager", &[], Identity::System),
            ("system:node:worker-1", &["system:nodes"], Identity::System),
            (
                "system:serviceaccount:flux-system:kustomize-controller",
                &[],
                Identity::FluxController,
            ),
            (
                "system:serviceaccount:flux-system:helm-controller",
                &[],
                Identity::FluxController,
            ),
            (
                "system:serviceaccount:other-ns:kustomize-controller",
                &[],
                Identity::Other,
            ),
            (
                "system:serviceaccount:argocd:argocd-application-controller",
                &[],
                Identity::ArgoController,
            ),
            (
                "system:serviceaccount:argocd:argocd-server",
                &[],
                Identity::Other,
            ),
            ("ci-deployer", &[], Identity::Agent),
            ("bot", &["gitops-agents"], Identity::Agent),
            (
                "ana",
                &["developers", "system:authenticated"],
                Identity::Other,
            ),
            (
                "system:serviceaccount:kube-system:default",
                &[],
                Identity::Other,
            ),
            // Static-token or OIDC users merely named like a service account.
            (
                "system:serviceaccount:flux-system:kustomize-controller",
                &["system:authenticated"],
                Identity::Other,
            ),
            (
                "system:serviceaccount:argocd:argocd-application-controller",
                &["oidc:admins", "system:authenticated"],
                Identity::Other,
            ),
            (
                "system:serviceaccount:kube-system:generic-garbage-collector",
                &["system:authenticated"],
                Identity::Other,
            ),
            // The groups of another namespace do not make the name genuine.
            (
                "system:serviceaccount:flux-system:kustomize-controller",
                &["system:serviceaccounts", "system:serviceaccounts:team-a"],
                Identity::Other,
            ),
        ];
        for (name, groups, want) in cases {
            assert_eq!(Identity::of(&user(name, groups), &cfg), want, "{name}");
        }
    }

    #[test]
    fn agent_for_owner_table() {
        let ks = OwnerRef {
            kind: OwnerKind::Kustomization,
            namespace: "team-a".into(),
            name: "apps".into(),
        };
        let app = OwnerRef {
            kind: OwnerKind::Application,
            namespace: "argocd".into(),
            name: "web".into(),
        };
        let ns = OwnerRef {
            kind: OwnerKind::Namespace,
            namespace: "prod".into(),
            name: "prod".into(),
        };
        let tenant = OwnerInfo {
            revision: None,
            service_account: Some("system:serviceaccount:team-a:reconciler".into()),
        };
        let a = "system:serviceaccount:team-a:reconciler";
        let b = "system:serviceaccount:team-b:reconciler";
        let cases = [
            (Identity::FluxController, "", &ks, None, true),
            (Identity::FluxController, "", &app, None, false),
            (Identity::FluxController, "", &ns, None, true),
            (Identity::ArgoController, "", &app, None, true),
            (Identity::ArgoController, "", &ks, None, false),
            (Identity::Other, a, &ks, Some(&tenant), true),
            (Identity::Other, b, &ks, Some(&tenant), false),
            (Identity::Other, a, &ks, None, false),
            (Identity::Other, a, &ns, Some(&tenant), false),
            (Identity::Other, "ana", &ks, Some(&tenant), false),
            (Identity::Agent, "ci-deployer", &app, None, true),
        ];
        for (identity, username, owner, info, want) in cases {
            assert_eq!(
                identity.is_agent_for(&user(username, &[]), owner, info),
                want,
                "{identity:?} {username} {owner}"
            );
        }
        // The tenant's name without the service-account groups is nobody's agent.
        let impostor = UserInfo {
            username: a.into(),
            groups: vec!["system:authenticated".into()],
            ..Default::default()
        };
        assert!(!Identity::Other.is_agent_for(&impostor, &ks, Some(&tenant)));
    }
}
