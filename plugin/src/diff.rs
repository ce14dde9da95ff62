//! `kubectl gitops diff`: every managed object in scope against the document Git declares for it
//! at the applied revision (or the tip of the branch the source follows, or any revision), field
//! by field, printed as `kubectl diff` prints; objects Git declares that are not there
//! (missing), and objects in the owners' namespaces that nobody declares (strays). The comparison
//! itself is [`compare`], a pure function that `audit` reuses.

pub mod compare;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use clap::{Args, ValueEnum};
use gitops_guard_core::OwnerKind;
use gitops_guard_core::custody::{ARGO, KUSTOMIZE};
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::blame::fields::{self, Role};
use crate::change::diff::unified_named;
use crate::change::overrides::Overrides;
use crate::change::target;
use crate::git::{CommitInfo, revision};
use crate::locate::{self, Location, ObjectRef, OwnerCache, Planned};
use crate::object_args::{Selection, selection};
use crate::output;
use crate::session::{Global, Session};
use crate::status::Listing;
use compare::{Exceptions, FieldDiff, Inputs};

/// `diff` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
}

/// `diff` arguments.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// TYPE, TYPE/NAME, TYPE1,TYPE2 or TYPE NAME... as with kubectl get (default: every type,
    /// and missing objects and strays too).
    #[arg(value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// Every namespace (and cluster-scoped objects).
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Which revision of Git to compare with: `applied` (what each owner applied), `tip` (the
    /// newest commit of the branch its source follows) or a commit, branch or tag.
    #[arg(long, default_value = "applied", value_name = "applied|tip|REV")]
    pub revision: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: DiffFormat,
}

/// What `diff` found for one object.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDiff {
    pub object: ObjectRef,
    /// `drift`, `in-sync`, `missing` (Git declares it, the cluster lacks it), `stray` (live in
    /// an owner's namespace, declared by none), `not-compared` (see `note`) or `error`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The commit compared with (full hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDiff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The unified diff (text output).
    #[serde(skip)]
    pub text: String,
    /// The last commit that changed what defines the object (its document or an overlay that
    /// patches it), at or before the compared commit (`audit`).
    #[serde(skip)]
    pub last_commit: Option<CommitInfo>,
    /// The exceptions the object and its namespace carry (`audit` says which are in force).
    #[serde(skip)]
    pub exceptions: Exceptions,
}

impl ObjectDiff {
    fn of(object: ObjectRef, state: &'static str) -> ObjectDiff {
        ObjectDiff {
            object,
            state,
            owner: None,
            file: None,
            commit: None,
            fields: Vec::new(),
            note: None,
            error: None,
            text: String::new(),
            last_commit: None,
            exceptions: Exceptions::default(),
        }
    }

    /// Whether the object is not in the state Git says: drift, missing or a stray.
    pub fn drifted(&self) -> bool {
        matches!(self.state, "drift" | "missing" | "stray")
    }
}

/// The JSON document of `diff -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub revision: String,
    pub summary: Summary,
    pub items: Vec<ObjectDiff>,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub objects: usize,
    pub in_sync: usize,
    pub drifted: usize,
    pub missing: usize,
    pub strays: usize,
    pub not_compared: usize,
    pub errors: usize,
}

impl Summary {
    fn of(items: &[ObjectDiff]) -> Summary {
        let mut s = Summary {
            objects: items.len(),
            ..Summary::default()
        };
        for i in items {
            match i.state {
                "in-sync" => s.in_sync += 1,
                "drift" => s.drifted += 1,
                "missing" => s.missing += 1,
                "stray" => s.strays += 1,
                "not-compared" => s.not_compared += 1,
                _ => s.errors += 1,
            }
        }
        s
    }

    /// `3 objects: 1 in sync, 1 drifted, 1 missing, 0 strays, 0 not compared, 0 errors`.
    pub fn line(&self) -> String {
        format!(
            "{} objects: {} in sync, {} drifted, {} missing, {} strays, {} not compared, {} errors",
            self.objects,
            self.in_sync,
            self.drifted,
            self.missing,
            self.strays,
            self.not_compared,
            self.errors
        )
    }
}

fn yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_default()
}

/// Who wrote each drifted field, and what allowed it: `# spec.replicas: kubectl-edit at … (drift)`.
fn field_notes(fields: &[FieldDiff]) -> String {
    let mut out = String::new();
    for f in fields {
        let what = match &f.change {
            compare::Change::Changed { .. } => "changed",
            compare::Change::Missing { .. } => "missing",
            compare::Change::Added { .. } => "added",
        };
        let by = match (&f.manager, f.time) {
            (Some(m), Some(t)) => format!(" by {m} at {t}"),
            (Some(m), None) => format!(" by {m}"),
            _ => String::new(),
        };
        let allowed = f
            .allowed_by
            .as_ref()
            .map(|a| format!(", allowed by {a}"))
            .unwrap_or_default();
        out.push_str(&format!("# {}: {what}{by}{allowed}\n", f.field));
    }
    out
}

/// The diff of one located object: the document Git gives (after overlays and what the owner
/// sets) against the live object.
fn diff_located(cx: &mut Context<'_>, loc: &Location) -> ObjectDiff {
    let mut d = ObjectDiff::of(loc.object.clone(), "in-sync");
    d.owner = loc.owner.as_ref().map(|o| o.to_string());
    d.file = loc.file.clone();
    d.commit = loc.applied_commit.clone();
    d.last_commit = loc.newest_commit().cloned();
    if let Some(e) = &loc.error {
        d.state = "error";
        d.error = Some(e.clone());
        return d;
    }
    let namespace = cx.namespace(&loc.object.namespace);
    d.exceptions = Exceptions::of(&loc.live, namespace.as_deref(), &cx.session.config);
    if let Some(owner) = loc
        .owner
        .as_ref()
        .filter(|o| o.kind == OwnerKind::HelmRelease)
    {
        d.state = "not-compared";
        d.note = Some(format!(
            "rendered by Helm from {owner}: the HelmRelease and its values are compared with Git instead (kubectl gitops diff helmrelease/{} -n {})",
            owner.name, owner.namespace
        ));
        return d;
    }
    if loc.chart.is_some() {
        d.state = "not-compared";
        d.note = Some("rendered by a Helm chart: not compared with Git".into());
        return d;
    }
    let (Some(dir), Some(commit), Some((build, entry))) =
        (&loc.repository, &loc.applied_commit, &loc.built_from)
    else {
        d.state = "error";
        d.error = Some(format!(
            "{}: no document in Git to compare with",
            loc.object.describe()
        ));
        return d;
    };
    if entry.doc.is_none() {
        d.state = "not-compared";
        d.note = Some(format!(
            "generated by a kustomize generator in {}: not compared",
            entry.file
        ));
        return d;
    }
    // What locate built at the applied commit (it builds every object with a document; only a
    // commit it could not read is read here again, to say why).
    let built = loc.effective.as_deref().cloned();
    let git = match built {
        Some(g) => g,
        None => cx
            .session
            .finder
            .by_dir(dir)
            .ok_or_else(|| {
                Error::from(crate::git::Error::Invalid {
                    repo: dir.display().to_string(),
                    message: "not opened".into(),
                })
            })
            .and_then(|repo| {
                let id = gix::ObjectId::from_hex(commit.as_bytes()).map_err(|e| {
                    crate::git::Error::Invalid {
                        repo: dir.display().to_string(),
                        message: format!("{commit} is not a commit id: {e}"),
                    }
                })?;
                let snap = repo.snapshot(id)?;
                target::define(&snap, build, entry)?.effective()
            })
            .map_err(|e| e.to_string()),
    };
    let mut git = match git {
        Ok(g) => g,
        Err(e) => {
            d.state = "error";
            d.error = Some(format!("{}: {e}", loc.object.describe()));
            return d;
        }
    };
    // What the owner sets after the build (Flux spec.patches, spec.images, postBuild,
    // targetNamespace).
    if let Some(owner) = loc
        .owner
        .as_ref()
        .filter(|o| o.kind == OwnerKind::Kustomization)
    {
        let ks = cx.owner(owner);
        if let Some(ks) = &ks {
            if let Some(o) = Overrides::of_kustomization(ks) {
                let vars = cx.variables(ks);
                git = o.apply(&git, &vars);
            }
            if let Some(tns) = ks.pointer("/spec/targetNamespace").and_then(Value::as_str)
                && !loc.object.namespace.is_empty()
            {
                git["metadata"]["namespace"] = Value::String(tns.to_string());
            }
        }
    }
    let exceptions = d.exceptions.clone();
    let autoscaled = cx.autoscaled(&loc.object);
    let fields = compare::compare(
        &git,
        &loc.live,
        &Inputs {
            config: &cx.session.config,
            exceptions: &exceptions,
            autoscaled,
        },
    );
    if !fields.is_empty() {
        d.state = "drift";
        let before = yaml(&git);
        let after = yaml(&compare::view(&git, &fields));
        let short = revision::short(commit);
        d.text = format!(
            "{}{}",
            unified_named(
                &format!("git/{}@{short}", entry.file),
                &format!("live/{}", loc.object.resource()),
                &before,
                &after
            ),
            field_notes(&fields)
        );
        d.fields = fields;
    }
    d
}

/// Reads made once per run: owners, namespaces, autoscalers, postBuild variables. What the
/// listing already holds is not read again.
struct Context<'s> {
    session: &'s Session,
    owners: OwnerCache,
    namespaces: HashMap<String, Option<Rc<Value>>>,
    /// Per namespace: `(kind, name)` of what its HorizontalPodAutoscalers target.
    hpas: HashMap<String, HashSet<(String, String)>>,
    /// Whether `hpas` holds every namespace's autoscalers (a namespace not in it has none).
    hpas_whole: bool,
}

/// `(kind, name)` of what an autoscaler targets.
fn scale_target(hpa: &Value) -> Option<(String, String)> {
    let t = hpa.pointer("/spec/scaleTargetRef")?;
    Some((
        t.get("kind")?.as_str()?.to_string(),
        t.get("name")?.as_str()?.to_string(),
    ))
}

impl<'s> Context<'s> {
    fn new(session: &'s Session, owners: OwnerCache, listing: Option<&Listing>) -> Context<'s> {
        let mut cx = Context {
            session,
            owners,
            namespaces: HashMap::new(),
            hpas: HashMap::new(),
            hpas_whole: false,
        };
        let Some(listing) = listing else { return cx };
        for ns in listing.of_kind("", "Namespace") {
            if let Some(name) = ns.pointer("/metadata/name").and_then(Value::as_str) {
                cx.namespaces
                    .insert(name.to_string(), Some(Rc::new(ns.clone())));
            }
        }
        const HPA: (&str, &str) = ("autoscaling", "HorizontalPodAutoscaler");
        if listing.has_whole(HPA.0, HPA.1) {
            cx.hpas_whole = true;
            for hpa in listing.of_kind(HPA.0, HPA.1) {
                let ns = hpa
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Some(t) = scale_target(hpa) {
                    cx.hpas.entry(ns.to_string()).or_default().insert(t);
                }
            }
        }
        cx
    }

    fn owner(&mut self, o: &gitops_guard_core::owner::OwnerRef) -> Option<Rc<Value>> {
        let s = self.session;
        s.rt.block_on(self.owners.get(
            &s.cluster,
            KUSTOMIZE,
            "Kustomization",
            &o.namespace,
            &o.name,
        ))
        .ok()
        .flatten()
    }

    fn namespace(&mut self, ns: &str) -> Option<Rc<Value>> {
        if ns.is_empty() {
            return None;
        }
        let s = self.session;
        self.namespaces
            .entry(ns.to_string())
            .or_insert_with(|| {
                let r = s.cluster.resource_for("", "Namespace")?.clone();
                s.rt.block_on(s.cluster.get(&r, None, ns))
                    .ok()
                    .flatten()
                    .map(Rc::new)
            })
            .clone()
    }

    /// Whether a HorizontalPodAutoscaler in the object's namespace targets it.
    fn autoscaled(&mut self, o: &ObjectRef) -> bool {
        if o.namespace.is_empty() {
            return false;
        }
        let s = self.session;
        if self.hpas_whole {
            return self
                .hpas
                .get(&o.namespace)
                .is_some_and(|t| t.contains(&(o.kind.clone(), o.name.clone())));
        }
        let targets = self.hpas.entry(o.namespace.clone()).or_insert_with(|| {
            let Some(r) = s
                .cluster
                .resource_for("autoscaling", "HorizontalPodAutoscaler")
            else {
                return HashSet::new();
            };
            let r = r.clone();
            s.rt.block_on(s.cluster.list_lenient(&r, Some(&o.namespace), None))
                .unwrap_or_default()
                .iter()
                .filter_map(scale_target)
                .collect()
        });
        targets.contains(&(o.kind.clone(), o.name.clone()))
    }

    /// The postBuild variables of a Kustomization: `substitute`, then each `substituteFrom`
    /// ConfigMap or Secret (later ones do not override earlier ones, as Flux reads them).
    fn variables(&mut self, ks: &Value) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        if let Some(m) = ks
            .pointer("/spec/postBuild/substitute")
            .and_then(Value::as_object)
        {
            for (k, v) in m {
                if let Some(v) = v.as_str() {
                    vars.insert(k.clone(), v.to_string());
                }
            }
        }
        let ns = ks
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let from = ks
            .pointer("/spec/postBuild/substituteFrom")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for f in from {
            let kind = f.get("kind").and_then(Value::as_str).unwrap_or("ConfigMap");
            let Some(name) = f.get("name").and_then(Value::as_str) else {
                continue;
            };
            let s = self.session;
            let Some(r) = s.cluster.resource_for("", kind) else {
                continue;
            };
            let r = r.clone();
            let Some(obj) =
                s.rt.block_on(s.cluster.get(&r, Some(ns), name))
                    .ok()
                    .flatten()
            else {
                continue;
            };
            if let Some(data) = obj.get("data").and_then(Value::as_object) {
                for (k, v) in data {
                    let Some(text) = v.as_str() else { continue };
                    let value = if kind == "Secret" {
                        // Secret data is base64; k8s-openapi's ByteString decodes it.
                        serde_json::from_value::<k8s_openapi::ByteString>(v.clone())
                            .ok()
                            .and_then(|b| String::from_utf8(b.0).ok())
                    } else {
                        Some(text.to_string())
                    };
                    if let Some(value) = value {
                        vars.entry(k.clone()).or_insert(value);
                    }
                }
            }
        }
        vars
    }
}

/// `(group, kind, namespace, name)` of an object.
type Key = (String, String, String, String);

fn key_of(o: &ObjectRef) -> Key {
    (
        o.group().to_string(),
        o.kind.clone(),
        o.namespace.clone(),
        o.name.clone(),
    )
}

/// What the owners in the cluster declare: Flux Kustomizations' `status.inventory` (the objects
/// they applied from Git at their revision) and Argo CD Applications' `status.resources`, each
/// with the owner's name. The owners come from `listing` where it holds every one of their kind,
/// else from a list of every namespace.
fn declared(session: &Session, listing: Option<&Listing>) -> Result<Vec<(Key, String)>, Error> {
    let mut out = Vec::new();
    for ks in owners_of_kind(session, listing, KUSTOMIZE, "Kustomization")? {
        let owner = format!(
            "Flux Kustomization {}/{}",
            ks.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            ks.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
        let entries = ks
            .pointer("/status/inventory/entries")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for e in entries {
            // `<namespace>_<name>_<group>_<kind>`.
            let Some(id) = e.get("id").and_then(Value::as_str) else {
                continue;
            };
            let parts: Vec<&str> = id.splitn(4, '_').collect();
            if let [ns, name, group, kind] = parts[..] {
                out.push((
                    (
                        group.to_string(),
                        kind.to_string(),
                        ns.to_string(),
                        name.to_string(),
                    ),
                    owner.clone(),
                ));
            }
        }
    }
    for app in owners_of_kind(session, listing, ARGO, "Application")? {
        let owner = format!(
            "Argo CD Application {}/{}",
            app.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            app.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
        let resources = app
            .pointer("/status/resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for res in resources {
            let s = |k: &str| {
                res.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            out.push((
                (s("group"), s("kind"), s("namespace"), s("name")),
                owner.clone(),
            ));
        }
    }
    Ok(out)
}

/// Every object of an owner kind: from `listing` where it holds every one of the kind, else
/// listed in every namespace.
fn owners_of_kind<'l>(
    session: &Session,
    listing: Option<&'l Listing>,
    group: &'static str,
    kind: &'static str,
) -> Result<Vec<Cow<'l, Value>>, Error> {
    if let Some(l) = listing.filter(|l| l.has_whole(group, kind)) {
        return Ok(l.of_kind(group, kind).map(Cow::Borrowed).collect());
    }
    let cluster = &session.cluster;
    let Some(r) = cluster.resource_for(group, kind) else {
        return Ok(Vec::new());
    };
    Ok(session
        .rt
        .block_on(cluster.list(r, None, None))?
        .into_iter()
        .map(Cow::Owned)
        .collect())
}

/// Whether a person (neither an agent nor Kubernetes) wrote the object.
fn written_by_a_person(session: &Session, live: &Value) -> Option<String> {
    fields::managers(live)
        .into_iter()
        .find(|m| fields::role(&session.config, &m.name) == Role::Other)
        .map(|m| m.name)
}

/// Kinds that are records, not configuration: never strays.
const RECORDS: &[&str] = &["Event", "Lease", "EndpointSlice", "Endpoints"];

/// Resolves `--revision` for each object's owner: `applied` leaves the applied commit; `tip` the
/// newest commit of the branch the source follows; anything else a commit, branch or tag.
fn retarget(session: &mut Session, planned: &mut [Planned], wanted: &str) -> Result<(), Error> {
    if wanted == "applied" {
        return Ok(());
    }
    let mut resolved: HashMap<(String, String), String> = HashMap::new();
    for p in planned.iter_mut() {
        let Some(t) = p.target.as_mut() else { continue };
        let applier = t.applier.clone();
        for (source, rev, _) in t.builds.iter_mut() {
            let name = if wanted == "tip" {
                source
                    .reference
                    .clone()
                    .or_else(|| rev.reference.clone())
                    .ok_or_else(|| Error::Usage(format!(
                        "{applier} names no branch to take the tip of: use --revision with a commit, branch or tag"
                    )))?
            } else {
                wanted.to_string()
            };
            let key = (source.url.clone(), name.clone());
            let commit = match resolved.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let found = session.finder.open(&source.url, None, &applier)?;
                    let id = found
                        .repo
                        .resolve_reference(&name)
                        .or_else(|| found.repo.commit_id(&name).ok().flatten())
                        .ok_or_else(|| Error::Usage(format!(
                            "--revision {name}: no such commit, branch or tag in {} (run `git fetch` there, or name another)",
                            found.repo.dir.display()
                        )))?;
                    resolved.insert(key, id.to_string());
                    id.to_string()
                }
            };
            rev.commit = Some(commit);
        }
        if let Some((_, rev, _)) = t.builds.first() {
            t.revision = rev.clone();
        }
    }
    Ok(())
}

/// What [`scan`] found: one item per managed object, missing object and stray (sorted by
/// namespace, kind and name), and every live object of the scope it listed.
pub struct Scan {
    pub items: Vec<ObjectDiff>,
    /// Every object listed in the scope (objects a controller made from another left out).
    pub listed: Vec<Value>,
    /// The namespaces in scope where an owner declares objects (whole scope only).
    pub guarded: BTreeSet<String>,
    /// Live objects in those namespaces that no owner declares and no person made (a
    /// namespace's default ServiceAccount, objects the agents make): neither managed nor strays.
    pub unmanaged: Vec<ObjectRef>,
    /// Where each managed object was found in Git (what `items` were compared from).
    pub located: Vec<Location>,
}

/// The comparison `diff` prints and `audit` reports: every managed object in scope against Git
/// at `revision`, and (for the whole scope) missing objects and strays.
pub fn scan(
    session: &mut Session,
    resources: &[String],
    all_namespaces: bool,
    revision: &str,
) -> Result<Scan, Error> {
    let whole_scope = matches!(selection(resources)?, Selection::Everything);
    if let Selection::Some { types, named } = selection(resources)? {
        session.know_types(
            types
                .iter()
                .map(String::as_str)
                .chain(named.iter().map(|(t, _)| t.as_str())),
        )?;
    }
    let mut listing = crate::status::objects(session, resources, all_namespaces, None)?;
    let objects = listing.objects.clone();
    let not_found = std::mem::take(&mut listing.missing);
    let listed: HashSet<Key> = objects.iter().map(|v| key_of(&ObjectRef::of(v))).collect();
    // Owners and sources the listing holds are not read again.
    let mut cache = OwnerCache::of_listed(objects.iter().chain(&listing.controlled));
    let planned: Vec<Planned> = session.rt.block_on(async {
        let mut out = Vec::with_capacity(objects.len());
        for v in objects {
            out.push(locate::plan(&session.cluster, &mut cache, v, &session.config).await);
        }
        out
    });
    let (mut managed, unmanaged): (Vec<Planned>, Vec<Planned>) = planned
        .into_iter()
        .partition(|p| p.location.owner.is_some() || p.location.error.is_some());
    retarget(session, &mut managed, revision)?;
    let located = locate::locate_all(&mut session.finder, managed);
    let mut items: Vec<ObjectDiff> = Vec::new();
    let mut guarded_namespaces = BTreeSet::new();
    let mut others = Vec::new();
    {
        // Namespaces and autoscalers: from a listing of every namespace.
        let listed_all = (all_namespaces && whole_scope).then_some(&listing);
        let mut cx = Context::new(&*session, cache, listed_all);
        for loc in &located {
            items.push(diff_located(&mut cx, loc));
        }
    }
    for e in not_found {
        let mut d = ObjectDiff::of(
            ObjectRef {
                api_version: String::new(),
                kind: String::new(),
                namespace: String::new(),
                name: String::new(),
            },
            "error",
        );
        d.error = Some(e.to_string());
        items.push(d);
    }
    // Missing objects and strays: only when the whole scope is asked for.
    if whole_scope {
        let declared = declared(session, all_namespaces.then_some(&listing))?;
        let in_scope = |ns: &str| all_namespaces || ns == session.namespace;
        let guarded: HashSet<&str> = declared
            .iter()
            .map(|(k, _)| k.2.as_str())
            .filter(|ns| !ns.is_empty() && in_scope(ns))
            .collect();
        let declared_keys: HashSet<&Key> = declared.iter().map(|(k, _)| k).collect();
        let mut seen: HashSet<&Key> = HashSet::new();
        for (key, owner) in &declared {
            let (group, kind, ns, name) = key;
            let cluster_scoped = ns.is_empty();
            if (cluster_scoped && !all_namespaces) || (!cluster_scoped && !in_scope(ns)) {
                continue;
            }
            if listed.contains(key) || !seen.insert(key) {
                continue;
            }
            // Not listed: a kind the listing left out, or really missing.
            let live = session
                .rt
                .block_on(session.cluster.get_kind(group, kind, ns, name));
            if let Ok(Some(_)) = live {
                continue;
            }
            let api_version = match session.cluster.resource_for(group, kind) {
                Some(r) => r.api.api_version.clone(),
                None => group.clone(),
            };
            let mut d = ObjectDiff::of(
                ObjectRef {
                    api_version,
                    kind: kind.clone(),
                    namespace: ns.clone(),
                    name: name.clone(),
                },
                "missing",
            );
            d.owner = Some(owner.clone());
            d.note = Some(format!("declared by {owner}, not in the cluster"));
            items.push(d);
        }
        for p in &unmanaged {
            let o = &p.location.object;
            if !guarded.contains(o.namespace.as_str())
                || RECORDS.contains(&o.kind.as_str())
                || declared_keys.contains(&key_of(o))
            {
                continue;
            }
            let Some(by) = written_by_a_person(session, &p.location.live) else {
                others.push(o.clone());
                continue;
            };
            let mut d = ObjectDiff::of(o.clone(), "stray");
            d.note = Some(format!(
                "in a namespace GitOps manages, declared by no owner, made by {by}"
            ));
            items.push(d);
        }
        guarded_namespaces = guarded.iter().map(|s| s.to_string()).collect();
    }
    items.sort_by(|a, b| {
        (&a.object.namespace, &a.object.kind, &a.object.name).cmp(&(
            &b.object.namespace,
            &b.object.kind,
            &b.object.name,
        ))
    });
    others.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));
    Ok(Scan {
        items,
        listed: listing.objects,
        guarded: guarded_namespaces,
        unmanaged: others,
        located,
    })
}

/// The exit status of a scan: 2 when anything could not be compared for an error, 1 when
/// anything drifted, is missing or is a stray, else 0.
pub fn exit_code(items: &[ObjectDiff]) -> u8 {
    if items.iter().any(|i| i.state == "error") {
        2
    } else if items.iter().any(ObjectDiff::drifted) {
        1
    } else {
        0
    }
}

/// Runs `diff`; the exit status: 0 no drift, 1 drift (or missing objects or strays), 2 errors.
pub fn run(global: &Global, args: &DiffArgs) -> Result<u8, Error> {
    let mut session = Session::open(global)?;
    let scan = scan(
        &mut session,
        &args.resources,
        args.all_namespaces,
        &args.revision,
    )?;
    let items = &scan.items;
    let summary = Summary::of(items);
    let mut stdout = std::io::stdout().lock();
    match args.output {
        DiffFormat::Json => output::json(
            &mut stdout,
            &Report {
                revision: args.revision.clone(),
                summary,
                items: items.clone(),
            },
        )?,
        DiffFormat::Text => output::text(&mut stdout, &render(items, &summary))?,
    }
    for i in items {
        if let Some(e) = &i.error {
            eprintln!("error: {e}");
        }
    }
    let code = exit_code(items);
    crate::session::left_to_exit(scan);
    Ok(code)
}

/// The text output: a unified diff per drifted object, a line per missing object, stray and
/// object not compared, then the summary.
pub fn render(items: &[ObjectDiff], summary: &Summary) -> String {
    let mut out = String::new();
    for i in items {
        match i.state {
            "drift" => out.push_str(&i.text),
            "missing" | "stray" | "not-compared" => out.push_str(&format!(
                "# {} {}: {}\n",
                i.state,
                i.object.describe(),
                i.note.clone().unwrap_or_default()
            )),
            _ => {}
        }
    }
    out.push_str(&summary.line());
    out.push('\n');
    out
}
