//! `kubectl gitops status`: one row per object with owner, applied revision, file, the last
//! commit that touched the file, and drift.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use clap::Args;
use gitops_guard_core::owner::OwnerRef;
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::blame::{self, Context};
use crate::cluster::Resource;
use crate::git::revision;
use crate::locate::{self, Drift, Location, OwnerCache, Planned};
use crate::manifest::yaml::{Document, parse_documents};
use crate::object_args::{Selection, selection};
use crate::output::Format;
use crate::output::{self, Table};
use crate::session::{Global, Session};

/// `status` arguments.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// TYPE, TYPE/NAME, TYPE1,TYPE2 or TYPE NAME... as with kubectl get (default: every type).
    #[arg(value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// List objects in all namespaces (and cluster-scoped ones).
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Label selector, e.g. app=web.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Format,
    /// Also list objects no GitOps agent manages.
    #[arg(long)]
    pub all: bool,
}

/// Whether a controller made the object from another (its controller owner reference).
pub fn controlled(v: &Value) -> bool {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        })
}

/// How many list requests `objects` keeps in flight: the API server encodes one type while this
/// process decodes another.
const LISTS_AT_ONCE: usize = 4;

/// What [`objects`] listed.
pub struct Listing {
    /// The objects (deduplicated by uid; objects a controller made from another left out).
    pub objects: Vec<Value>,
    /// The named objects that do not exist.
    pub missing: Vec<Error>,
    /// Objects a controller made whose kinds every object's comparison reads (owners and
    /// sources, which an ApplicationSet makes; autoscalers, which KEDA makes): not listed as
    /// objects, but there to read.
    pub controlled: Vec<Value>,
    /// `(group, kind)` of the types listed in every namespace without a selector, and not
    /// skipped (forbidden, not served): every object of such a type is in `objects` or
    /// `controlled`.
    pub whole: HashSet<(String, String)>,
}

impl Listing {
    /// Whether every object of the type was listed.
    pub fn has_whole(&self, group: &str, kind: &str) -> bool {
        self.whole.contains(&(group.to_string(), kind.to_string()))
    }

    /// Every listed object of the type, whoever made it.
    pub fn of_kind<'a>(&'a self, group: &'a str, kind: &'a str) -> impl Iterator<Item = &'a Value> {
        self.objects
            .iter()
            .chain(&self.controlled)
            .filter(move |v| crate::cluster::group_kind_of(v) == Some((group, kind)))
    }
}

/// Kinds whose controller-made objects a listing keeps in [`Listing::controlled`].
fn read_by_comparisons(group: &str, kind: &str) -> bool {
    (group == "autoscaling" && kind == "HorizontalPodAutoscaler")
        || gitops_guard_core::custody::kind_of(group, kind).is_some()
}

/// Lists the objects the selection names (deduplicated by uid; objects a controller made from
/// another left out), and the named objects that do not exist (said on stderr after the rows, as
/// `kubectl get` does, rather than hiding them).
pub fn objects(
    session: &Session,
    resources: &[String],
    all_namespaces: bool,
    selector: Option<&str>,
) -> Result<Listing, Error> {
    use futures::StreamExt;
    let ns = (!all_namespaces).then_some(session.namespace.as_str());
    let whole_lists = all_namespaces && selector.is_none();
    let cluster = &session.cluster;
    let mut found: Vec<Value> = Vec::new();
    let mut missing = Vec::new();
    let mut whole = HashSet::new();
    let mut kept = Vec::new();
    match selection(resources)? {
        Selection::Everything => {
            let resources: Vec<Resource> = cluster
                .listable(!all_namespaces)
                .into_iter()
                .cloned()
                .collect();
            // In order, a few at a time.
            let lists: Vec<_> = session.rt.block_on(
                futures::stream::iter(
                    resources
                        .iter()
                        .map(|r| cluster.list_or_skip(r, ns, selector)),
                )
                .buffered(LISTS_AT_ONCE)
                .collect(),
            );
            for (r, list) in resources.iter().zip(lists) {
                let Some(list) = list? else { continue };
                if whole_lists {
                    whole.insert((r.api.group.clone(), r.api.kind.clone()));
                }
                // Objects a controller made from another (ReplicaSets, Pods, …) are not GitOps'.
                let keep = read_by_comparisons(&r.api.group, &r.api.kind);
                for v in list {
                    if !controlled(&v) {
                        found.push(v);
                    } else if keep {
                        kept.push(v);
                    }
                }
            }
        }
        Selection::Some { types, named } => {
            for t in &types {
                let r = cluster.resolve_type(t)?.clone();
                found.extend(session.rt.block_on(cluster.list(&r, ns, selector))?);
                if whole_lists {
                    whole.insert((r.api.group.clone(), r.api.kind.clone()));
                }
            }
            for (t, n) in &named {
                match session.get(t, n) {
                    Ok((_, v)) => found.push(v),
                    Err(e @ Error::Cluster(crate::cluster::Error::NotFound { .. })) => {
                        missing.push(e)
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let mut seen = HashSet::new();
    found.retain(|v| {
        let uid = v
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        uid.is_empty() || seen.insert(uid)
    });
    Ok(Listing {
        objects: found,
        missing,
        controlled: kept,
        whole,
    })
}

/// Fills in drift: live fields Git does not explain that a person or script wrote.
pub fn fill_drift(session: &Session, locations: &mut [Location]) {
    let mut files: HashMap<(PathBuf, String, String), Option<Vec<Document>>> = HashMap::new();
    for loc in locations.iter_mut() {
        if !loc.managed() || loc.error.is_some() {
            continue;
        }
        // The object's own document, when Git defines it directly (not a chart, not generated).
        let doc = match (
            &loc.repository,
            &loc.applied_commit,
            &loc.file,
            loc.document,
            &loc.chart,
        ) {
            (Some(dir), Some(commit), Some(file), Some(index), None) => {
                let key = (dir.clone(), commit.clone(), file.clone());
                let docs = files.entry(key).or_insert_with(|| {
                    let repo = session.finder.by_dir(dir)?;
                    let id = gix::ObjectId::from_hex(commit.as_bytes()).ok()?;
                    let bytes = repo.snapshot(id).ok()?.read(file).ok()??;
                    parse_documents(&String::from_utf8_lossy(&bytes)).ok()
                });
                docs.as_ref()
                    .and_then(|d| d.get(index))
                    .and_then(Document::root)
            }
            _ => None,
        };
        let cx = Context {
            config: &session.config,
            git: doc,
            overlays: None,
            transform: &loc.transform,
            show_defaults: false,
        };
        let lines = blame::explain(&loc.live, &cx);
        loc.drift = blame::drift(&lines);
    }
}

fn owner_cell(o: &OwnerRef) -> String {
    let kind = match o.kind {
        gitops_guard_core::OwnerKind::Kustomization => "Kustomization",
        gitops_guard_core::OwnerKind::HelmRelease => "HelmRelease",
        gitops_guard_core::OwnerKind::Application => "Application",
        gitops_guard_core::OwnerKind::Namespace => "Namespace",
    };
    format!("{kind} {}/{}", o.namespace, o.name)
}

/// `kubectl-edit 5m ago`, plus how many more fields drifted.
pub fn drift_cell(drift: &[Drift], now: jiff::Timestamp) -> String {
    let Some(first) = drift.first() else {
        return "-".into();
    };
    let when = first
        .time
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| format!(" {} ago", output::age(t, now)))
        .unwrap_or_default();
    let more = if drift.len() > 1 {
        format!(" (+{} more)", drift.len() - 1)
    } else {
        String::new()
    };
    format!("{}{when}{more}", first.manager)
}

/// The table (default or wide) for `locations`.
pub fn table(
    locations: &[Location],
    wide: bool,
    all_namespaces: bool,
    now: jiff::Timestamp,
) -> Table {
    let mut header: Vec<&str> = Vec::new();
    if wide || all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["RESOURCE", "OWNER"]);
    if wide {
        header.extend(["SOURCE", "PATH"]);
    }
    header.extend(["REVISION", "FILE"]);
    if wide {
        header.push("DOC");
    }
    header.extend(["COMMIT", "AUTHOR"]);
    header.push(if wide { "DATE" } else { "AGE" });
    header.extend(["SUBJECT", "DRIFT"]);
    if wide {
        header.push("CHART");
    }
    let mut t = Table::new(&header);
    // A kind listed from two API groups (a cert-manager Certificate and another) is named with
    // its group, `certificate.cert-manager.io/web`, as kubectl does, so the rows can be told apart.
    let mut groups_of: HashMap<String, HashSet<&str>> = HashMap::new();
    for l in locations {
        groups_of
            .entry(l.object.kind.to_lowercase())
            .or_default()
            .insert(l.object.group());
    }
    for l in locations {
        let mut row: Vec<String> = Vec::new();
        if wide || all_namespaces {
            row.push(l.object.namespace.clone());
        }
        let ambiguous = groups_of
            .get(&l.object.kind.to_lowercase())
            .is_some_and(|g| g.len() > 1);
        row.push(if ambiguous {
            l.object.resource_with_group()
        } else {
            l.object.resource()
        });
        let Some(owner) = &l.owner else {
            row.push("(unmanaged)".into());
            t.push(row);
            continue;
        };
        row.push(owner_cell(owner));
        if wide {
            row.push(
                l.source
                    .as_ref()
                    .map(|s| match &s.reference {
                        Some(r) => format!("{} ({r})", s.url),
                        None => s.url.clone(),
                    })
                    .unwrap_or_default(),
            );
            row.push(
                l.source
                    .as_ref()
                    .map(|s| format!("./{}", s.path))
                    .unwrap_or_default(),
            );
        }
        row.push(l.revision.as_ref().map(|r| r.display()).unwrap_or_default());
        row.push(match (&l.file, &l.problem) {
            (_, Some(p)) => format!("({p})"),
            // Overlays set fields too: named, and the commit is the newest of them all.
            (Some(f), None) => match l.patched_by.as_slice() {
                [] => f.clone(),
                [one] => format!("{f} + {}", one.file),
                more => format!("{f} + {} overlay files", more.len()),
            },
            (None, None) => String::new(),
        });
        if wide {
            row.push(l.document.map(|d| (d + 1).to_string()).unwrap_or_default());
        }
        match l.newest_commit() {
            Some(c) => {
                row.push(c.short().to_string());
                row.push(c.author.clone());
                row.push(if wide {
                    c.date.strftime("%Y-%m-%d %H:%M").to_string()
                } else {
                    output::age(c.date, now)
                });
                row.push(c.subject.clone());
            }
            None => row.extend([String::new(), String::new(), String::new(), String::new()]),
        }
        row.push(if l.error.is_some() {
            String::new()
        } else {
            drift_cell(&l.drift, now)
        });
        if wide {
            row.push(l.chart.clone().unwrap_or_default());
        }
        t.push(row);
    }
    t
}

#[derive(Serialize)]
struct List<'a> {
    items: &'a [Location],
}

/// Runs `status`; `Ok(false)` when some object's chain could not be followed.
pub fn run(global: &Global, args: &StatusArgs) -> Result<bool, Error> {
    let mut session = Session::open(global)?;
    if let Selection::Some { types, named } = selection(&args.resources)? {
        session.know_types(
            types
                .iter()
                .map(String::as_str)
                .chain(named.iter().map(|(t, _)| t.as_str())),
        )?;
    }
    let listing = objects(
        &session,
        &args.resources,
        args.all_namespaces,
        args.selector.as_deref(),
    )?;
    // Owners and sources the listing holds are not read again.
    let mut cache = OwnerCache::of_listed(listing.objects.iter().chain(&listing.controlled));
    let Listing {
        objects, missing, ..
    } = listing;
    let planned: Vec<Planned> = session.rt.block_on(async {
        let mut out = Vec::with_capacity(objects.len());
        for v in objects {
            out.push(locate::plan(&session.cluster, &mut cache, v, &session.config).await);
        }
        out
    });
    let planned: Vec<Planned> = planned
        .into_iter()
        .filter(|p| args.all || p.location.owner.is_some() || p.location.error.is_some())
        .collect();
    let mut locations = locate::locate_all(&mut session.finder, planned);
    fill_drift(&session, &mut locations);
    locations.sort_by(|a, b| {
        (
            &a.object.namespace,
            &a.object.kind,
            a.object.group(),
            &a.object.name,
        )
            .cmp(&(
                &b.object.namespace,
                &b.object.kind,
                b.object.group(),
                &b.object.name,
            ))
    });
    let now = jiff::Timestamp::now();
    let mut stdout = std::io::stdout().lock();
    match args.output {
        Format::Table | Format::Wide => {
            if locations.is_empty() && missing.is_empty() {
                eprintln!(
                    "No GitOps-managed objects found{}.",
                    if args.all_namespaces {
                        String::new()
                    } else {
                        format!(" in {} namespace", session.namespace)
                    }
                );
            } else if !locations.is_empty() {
                let t = table(
                    &locations,
                    args.output == Format::Wide,
                    args.all_namespaces,
                    now,
                );
                output::text(&mut stdout, &t.render())?;
            }
        }
        Format::Json => output::json(&mut stdout, &List { items: &locations })?,
        Format::Yaml => output::yaml(&mut stdout, &List { items: &locations })?,
    }
    let mut ok = missing.is_empty();
    for e in &missing {
        eprintln!("error: {}", e.report());
    }
    for l in &locations {
        if let Some(line) = l.error_line() {
            ok = false;
            eprintln!("{line}");
        }
    }
    Ok(ok)
}

/// `deployment/web` → short commit, for messages in other verbs.
pub fn short_commit(l: &Location) -> String {
    l.applied_commit
        .as_deref()
        .map(|c| revision::short(c).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located() -> Vec<Location> {
        use crate::git::CommitInfo;
        use crate::locate::Source;
        use gitops_guard_core::OwnerKind;
        let now: jiff::Timestamp = "2026-03-10T12:00:00Z".parse().unwrap();
        let mut web = Location::new(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"}
        }));
        web.owner = Some(OwnerRef {
            kind: OwnerKind::Kustomization,
            namespace: "flux-system".into(),
            name: "apps".into(),
        });
        web.source = Some(Source {
            kind: "GitRepository".into(),
            namespace: "flux-system".into(),
            name: "fleet".into(),
            url: "https://github.com/org/fleet".into(),
            reference: Some("main".into()),
            path: "apps/prod".into(),
        });
        web.revision = Some(revision::parse(
            "main@sha1:3f2a9c1e8b7d6c5b4a39281706f5e4d3c2b1a098",
        ));
        web.file = Some("apps/web/deployment.yaml".into());
        web.document = Some(0);
        web.commit = Some(CommitInfo {
            id: "9b1e0c2aa1b2c3d4e5f60718293a4b5c6d7e8f90".into(),
            author: "Ana Ruiz".into(),
            email: "ana@example.com".into(),
            date: jiff::Timestamp::from_second(now.as_second() - 3 * 86400).unwrap(),
            subject: "web: raise memory to 512Mi".into(),
        });
        web.drift = vec![Drift {
            field: "spec.replicas".into(),
            manager: "kubectl-edit".into(),
            time: Some(
                jiff::Timestamp::from_second(now.as_second() - 300)
                    .unwrap()
                    .to_string(),
            ),
        }];
        let manual = Location::new(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "manual", "namespace": "prod"}
        }));
        let mut broken = Location::new(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "env", "namespace": "prod"}
        }));
        broken.owner = Some(OwnerRef {
            kind: OwnerKind::Application,
            namespace: "argocd".into(),
            name: "web".into(),
        });
        broken.revision = Some(revision::parse("7d0e51f0a1b2c3d4e5f60718293a4b5c6d7e8f90"));
        broken.fail(
            &crate::git::Error::RepoUnreachable {
                url: "https://git.example.com/web".into(),
                what: None,
                source: Some(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()),
            }
            .into(),
        );
        vec![web, manual, broken]
    }

    #[test]
    fn tables_default_and_wide() {
        let now: jiff::Timestamp = "2026-03-10T12:00:00Z".parse().unwrap();
        let rows = located();
        assert_eq!(
            table(&rows, false, false, now).render(),
            "\
RESOURCE         OWNER                            REVISION       FILE                       COMMIT    AUTHOR     AGE   SUBJECT                      DRIFT
deployment/web   Kustomization flux-system/apps   main@3f2a9c1   apps/web/deployment.yaml   9b1e0c2   Ana Ruiz   3d    web: raise memory to 512Mi   kubectl-edit 5m ago
secret/manual    (unmanaged)
configmap/env    Application argocd/web           7d0e51f        (repo unreachable)
"
        );
        let wide = table(&rows, true, false, now).render();
        let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            vec![
                "NAMESPACE",
                "RESOURCE",
                "OWNER",
                "SOURCE",
                "PATH",
                "REVISION",
                "FILE",
                "DOC",
                "COMMIT",
                "AUTHOR",
                "DATE",
                "SUBJECT",
                "DRIFT",
                "CHART"
            ]
        );
        assert!(
            wide.lines().nth(1).unwrap().contains(
                "https://github.com/org/fleet (main)   ./apps/prod   main@3f2a9c1   apps/web/deployment.yaml   1     9b1e0c2   Ana Ruiz   2026-03-07 12:00"
            ),
            "{wide}"
        );
        let all_ns = table(&rows, false, true, now).render();
        assert!(all_ns.starts_with("NAMESPACE   RESOURCE"), "{all_ns}");
    }

    #[test]
    fn kinds_of_the_same_name_in_two_groups_are_named_with_their_group() {
        let now: jiff::Timestamp = "2026-03-10T12:00:00Z".parse().unwrap();
        let cert = |api_version: &str| {
            Location::new(serde_json::json!({
                "apiVersion": api_version, "kind": "Certificate",
                "metadata": {"name": "web", "namespace": "prod"}
            }))
        };
        let rows = vec![
            cert("cert-manager.io/v1"),
            cert("networking.gke.io/v1"),
            Location::new(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "prod"}
            })),
        ];
        let names: Vec<String> = table(&rows, false, false, now)
            .render()
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "certificate.cert-manager.io/web",
                "certificate.networking.gke.io/web",
                "configmap/web"
            ]
        );
        // One group only: the short name, as before.
        let one: Vec<Location> = rows.into_iter().skip(1).collect();
        assert!(
            table(&one, false, false, now)
                .render()
                .contains("\ncertificate/web "),
        );
    }

    #[test]
    fn json_and_yaml_rows() {
        let rows = located();
        let mut out = Vec::new();
        output::json(&mut out, &List { items: &rows }).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let web = &v["items"][0];
        assert_eq!(
            web["object"],
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "prod", "name": "web"})
        );
        assert_eq!(
            web["owner"],
            serde_json::json!({"kind": "Kustomization", "namespace": "flux-system", "name": "apps"})
        );
        assert_eq!(web["revision"]["reference"], "main");
        assert_eq!(web["file"], "apps/web/deployment.yaml");
        assert_eq!(web["document"], 0);
        assert_eq!(web["commit"]["author"], "Ana Ruiz");
        assert_eq!(web["drift"][0]["manager"], "kubectl-edit");
        assert!(web.get("live").is_none() && web.get("problem").is_none());
        assert_eq!(v["items"][1]["drift"], serde_json::json!([]));
        assert!(v["items"][1].get("owner").is_none());
        assert!(
            v["items"][2]["error"]
                .as_str()
                .unwrap()
                .starts_with("cannot reach the Git repository https://git.example.com/web")
        );
        let mut y = Vec::new();
        output::yaml(&mut y, &List { items: &rows }).unwrap();
        let back: serde_json::Value = serde_yaml_ng::from_slice(&y).unwrap();
        assert_eq!(back, v, "YAML carries the same document as JSON");
    }
}
