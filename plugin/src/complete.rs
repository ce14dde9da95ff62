//! `kubectl-gitops __complete WORD…`: shell completion in cobra's protocol, which kubectl (1.26+)
//! speaks to a plugin's `kubectl_complete-gitops` helper (the release archive ships it; it runs
//! this). kubectl calls the helper with the words after `kubectl gitops`, the last one being the
//! word under the cursor (empty for a new word). The answer is one candidate a line
//! (`candidate<TAB>description`), then `:<directive>` (cobra's ShellCompDirective bits).
//!
//! Subcommands and flags come from the clap command tree; `-o` and other enumerated values from
//! the arguments' possible values; resource types, object names and namespaces from the cluster
//! (discovery and lists, as `status` reads them); contexts from the kubeconfig. A cluster that
//! cannot be read gives no candidates, never a message (it would land in the user's prompt).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, Command};

use crate::cluster::{self, Cluster};

/// cobra's ShellCompDirective bits.
pub mod directive {
    /// Let the shell complete file names.
    pub const DEFAULT: u32 = 0;
    /// Completion failed: the shell completes nothing.
    pub const ERROR: u32 = 1;
    /// No space after the candidate (`deployments/` continues with a name).
    pub const NO_SPACE: u32 = 2;
    /// No file names either.
    pub const NO_FILE_COMP: u32 = 4;
}

/// How long the cluster may take before completion gives up (the user is waiting at a prompt).
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the cursor's word is, as far as the command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Words: candidates known without the cluster.
    Fixed(Vec<String>),
    /// Let the shell complete a file name.
    Files,
    /// Nothing to offer.
    Nothing,
    /// Resource types (plural names) starting with the prefix.
    Types,
    /// Names of objects of `type_name`, each written as `prefix` + name.
    Names { type_name: String, prefix: String },
    /// Namespaces.
    Namespaces,
    /// kubeconfig contexts.
    Contexts,
}

/// The connection flags seen on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    pub all_namespaces: bool,
}

/// The outcome of reading the words: what to offer for the last one, which is `current`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub want: Want,
    pub current: String,
    pub seen: Seen,
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

fn find_long<'a>(cmd: &'a Command, name: &str) -> Option<&'a Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|v| v.contains(&name))
    })
}

fn find_short(cmd: &Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

fn find_subcommand<'a>(cmd: &'a Command, word: &str) -> Option<&'a Command> {
    cmd.get_subcommands()
        .find(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word))
}

fn record(seen: &mut Seen, arg: &Arg, value: &str) {
    match arg.get_id().as_str() {
        "kubeconfig" => seen.kubeconfig = Some(PathBuf::from(value)),
        "context" => seen.context = Some(value.to_string()),
        "namespace" => seen.namespace = Some(value.to_string()),
        _ => {}
    }
}

fn with_help(name: String, help: Option<String>) -> String {
    match help {
        Some(h) if !h.is_empty() => {
            let first = h.lines().next().unwrap_or_default().trim_end_matches('.');
            format!("{name}\t{first}")
        }
        _ => name,
    }
}

/// The value candidates of a flag's argument.
fn value_want(arg: &Arg) -> Want {
    let possible = arg.get_possible_values();
    if !possible.is_empty() {
        return Want::Fixed(
            possible
                .iter()
                .filter(|p| !p.is_hide_set())
                .map(|p| {
                    with_help(
                        p.get_name().to_string(),
                        p.get_help().map(|h| h.to_string()),
                    )
                })
                .collect(),
        );
    }
    match arg.get_id().as_str() {
        "namespace" => return Want::Namespaces,
        "context" => return Want::Contexts,
        _ => {}
    }
    let names = arg.get_value_names().unwrap_or_default();
    if names
        .iter()
        .any(|n| matches!(n.as_str(), "FILE" | "PATH" | "DIR"))
    {
        Want::Files
    } else {
        Want::Nothing
    }
}

fn flags(cmd: &Command, current: &str) -> Want {
    let mut out = Vec::new();
    for a in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
    {
        let help = a.get_help().map(|h| h.to_string());
        if let Some(l) = a.get_long() {
            out.push(with_help(format!("--{l}"), help.clone()));
        }
        if !current.starts_with("--")
            && let Some(s) = a.get_short()
        {
            out.push(with_help(format!("-{s}"), help));
        }
    }
    Want::Fixed(out)
}

fn subcommands(cmd: &Command) -> Want {
    Want::Fixed(
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| {
                with_help(
                    s.get_name().to_string(),
                    s.get_about().map(|h| h.to_string()),
                )
            })
            .collect(),
    )
}

/// What the positional word `index` of `cmd` is, given the positionals before it.
fn positional_want(cmd: &Command, before: &[String], current: &str) -> Want {
    let positionals: Vec<&Arg> = cmd.get_positionals().collect();
    let Some(first) = positionals.first() else {
        return Want::Nothing;
    };
    // An enumerated positional (completion's shell).
    let at = positionals.get(before.len()).or_else(|| {
        positionals
            .last()
            .filter(|a| a.get_num_args().is_some_and(|n| n.max_values() > 1))
    });
    if let Some(arg) = at
        && !arg.get_possible_values().is_empty()
    {
        return value_want(arg);
    }
    let value_name = first
        .get_value_names()
        .and_then(|v| v.first().map(|n| n.to_string()))
        .unwrap_or_default();
    let objects = value_name.starts_with("TYPE") || value_name == "ARGS";
    if !objects {
        return Want::Nothing;
    }
    // status and diff take any number of TYPE, TYPE/NAME or TYPE NAME…; the others one object.
    let many = value_name == "TYPE[/NAME]";
    let slashed = |w: &str| -> Option<Want> {
        let (t, _) = w.split_once('/')?;
        Some(Want::Names {
            type_name: t.to_string(),
            prefix: format!("{t}/"),
        })
    };
    if before.is_empty() {
        return slashed(current).unwrap_or(Want::Types);
    }
    let type_first = !before[0].contains('/');
    if type_first && (before.len() == 1 || (many && before.iter().all(|w| !w.contains('/')))) {
        let type_name = before[0].split(',').next().unwrap_or_default().to_string();
        return Want::Names {
            type_name,
            prefix: String::new(),
        };
    }
    if many {
        return slashed(current).unwrap_or(Want::Types);
    }
    Want::Nothing
}

/// Reads the words (those after `kubectl gitops`; the last is the one being completed).
pub fn plan(root: &Command, words: &[String]) -> Plan {
    let (current, done) = match words.split_last() {
        Some((c, d)) => (c.clone(), d),
        None => (String::new(), &[][..]),
    };
    let mut seen = Seen::default();
    let mut cmd = root;
    let mut positionals: Vec<String> = Vec::new();
    let mut pending: Option<&Arg> = None;
    let mut dashdash = false;
    for w in done {
        if let Some(arg) = pending.take() {
            record(&mut seen, arg, w);
            continue;
        }
        if !dashdash && w == "--" {
            dashdash = true;
            continue;
        }
        if !dashdash && let Some(long) = w.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if let Some(arg) = find_long(cmd, name) {
                if name == "all-namespaces" {
                    seen.all_namespaces = true;
                }
                match value {
                    Some(v) => record(&mut seen, arg, v),
                    None if takes_value(arg) => pending = Some(arg),
                    None => {}
                }
            }
            continue;
        }
        if !dashdash && w.len() > 1 && w.starts_with('-') {
            // -n prod, -nprod, -A, -Ao json
            for (i, c) in w.char_indices().skip(1) {
                let Some(arg) = find_short(cmd, c) else { break };
                if c == 'A' {
                    seen.all_namespaces = true;
                }
                if takes_value(arg) {
                    let rest = &w[i + c.len_utf8()..];
                    if rest.is_empty() {
                        pending = Some(arg);
                    } else {
                        record(&mut seen, arg, rest.trim_start_matches('='));
                    }
                    break;
                }
            }
            continue;
        }
        if positionals.is_empty()
            && let Some(sub) = find_subcommand(cmd, w)
        {
            cmd = sub;
            continue;
        }
        positionals.push(w.clone());
    }
    let want = if let Some(arg) = pending {
        value_want(arg)
    } else if !dashdash && current.starts_with('-') {
        match current.split_once('=') {
            Some((flag, _)) => match flag
                .strip_prefix("--")
                .and_then(|name| find_long(cmd, name))
            {
                Some(arg) => match value_want(arg) {
                    Want::Fixed(values) => {
                        Want::Fixed(values.into_iter().map(|v| format!("{flag}={v}")).collect())
                    }
                    other => other,
                },
                None => Want::Nothing,
            },
            None => flags(cmd, &current),
        }
    } else if positionals.is_empty() && cmd.has_subcommands() {
        subcommands(cmd)
    } else {
        positional_want(cmd, &positionals, &current)
    };
    Plan {
        want,
        current,
        seen,
    }
}

/// The candidates that start with the current word, and the directive.
pub fn answer(
    plan: &Plan,
    cluster: impl FnOnce(&Plan) -> Result<Vec<String>, ()>,
) -> (Vec<String>, u32) {
    let keep = |all: Vec<String>| -> Vec<String> {
        let mut out: Vec<String> = all
            .into_iter()
            .filter(|c| {
                c.split('\t')
                    .next()
                    .unwrap_or_default()
                    .starts_with(plan.current.as_str())
            })
            .collect();
        out.dedup();
        out
    };
    match &plan.want {
        Want::Fixed(words) => (keep(words.clone()), directive::NO_FILE_COMP),
        Want::Files => (Vec::new(), directive::DEFAULT),
        Want::Nothing => (Vec::new(), directive::NO_FILE_COMP),
        Want::Types | Want::Names { .. } | Want::Namespaces | Want::Contexts => match cluster(plan)
        {
            Ok(words) => (keep(words), directive::NO_FILE_COMP),
            Err(()) => (Vec::new(), directive::ERROR),
        },
    }
}

/// The cluster's part: types, names, namespaces, contexts.
async fn from_cluster(plan: &Plan) -> Result<Vec<String>, ()> {
    let seen = &plan.seen;
    if plan.want == Want::Contexts {
        let kc = match &seen.kubeconfig {
            Some(p) => kube::config::Kubeconfig::read_from(p),
            None => kube::config::Kubeconfig::read(),
        }
        .map_err(|_| ())?;
        return Ok(kc.contexts.into_iter().map(|c| c.name).collect());
    }
    let mut cluster: Cluster =
        cluster::connect(seen.kubeconfig.as_deref(), seen.context.as_deref())
            .await
            .map_err(|_| ())?;
    cluster.discover().await.map_err(|_| ())?;
    let names = |objects: Vec<serde_json::Value>, prefix: &str| -> Vec<String> {
        let mut out: Vec<String> = objects
            .iter()
            .filter_map(|o| {
                o.pointer("/metadata/name")
                    .and_then(serde_json::Value::as_str)
            })
            .map(|n| format!("{prefix}{n}"))
            .collect();
        out.sort();
        out.dedup();
        out
    };
    match &plan.want {
        Want::Types => {
            let mut out: Vec<String> = cluster
                .listable(false)
                .iter()
                .map(|r| r.api.plural.clone())
                .collect();
            out.sort();
            out.dedup();
            Ok(out)
        }
        Want::Namespaces => {
            let r = cluster.resolve_type("namespaces").map_err(|_| ())?.clone();
            Ok(names(
                cluster.list(&r, None, None).await.map_err(|_| ())?,
                "",
            ))
        }
        Want::Names { type_name, prefix } => {
            if cluster.resolve_type(type_name).is_err() {
                cluster
                    .refresh_if_unknown(type_name)
                    .await
                    .map_err(|_| ())?;
            }
            let r = cluster.resolve_type(type_name).map_err(|_| ())?.clone();
            let namespace = if seen.all_namespaces || !r.namespaced {
                None
            } else {
                Some(
                    seen.namespace
                        .clone()
                        .unwrap_or_else(|| cluster.default_namespace.clone()),
                )
            };
            let objects = cluster
                .list(&r, namespace.as_deref(), None)
                .await
                .map_err(|_| ())?;
            Ok(names(objects, prefix))
        }
        _ => Ok(Vec::new()),
    }
}

/// Prints the candidates for `words` (the arguments after `__complete`), then `:<directive>`.
pub fn run(words: &[String], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut root = <crate::cli::Cli as clap::CommandFactory>::command();
    root.build();
    let plan = plan(&root, words);
    let (candidates, directive) = answer(&plan, |plan| {
        let rt = crate::session::runtime().map_err(|_| ())?;
        rt.block_on(async {
            tokio::time::timeout(CLUSTER_TIMEOUT, from_cluster(plan))
                .await
                .map_err(|_| ())?
        })
    });
    for c in candidates {
        writeln!(out, "{c}")?;
    }
    writeln!(out, ":{directive}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut w: Vec<String> = line.split(' ').map(str::to_string).collect();
        if line.is_empty() {
            w = vec![String::new()];
        }
        w
    }

    fn offline(line: &str) -> (Vec<String>, u32) {
        let mut root = <crate::cli::Cli as clap::CommandFactory>::command();
        root.build();
        let plan = plan(&root, &words(line));
        answer(&plan, |_| Err(()))
    }

    fn names(out: &[String]) -> Vec<&str> {
        out.iter().map(|c| c.split('\t').next().unwrap()).collect()
    }

    #[test]
    fn completes_subcommands_with_their_descriptions() {
        let (out, d) = offline("st");
        assert_eq!(names(&out), vec!["status"]);
        assert!(
            out[0].starts_with("status\tOwner, applied revision"),
            "{out:?}"
        );
        assert_eq!(d, directive::NO_FILE_COMP);
        let (out, _) = offline("");
        let all = names(&out);
        for verb in [
            "status", "trace", "blame", "diff", "version", "scale", "set", "doctor",
        ] {
            assert!(all.contains(&verb), "{verb} in {all:?}");
        }
        assert!(!all.iter().any(|c| c.starts_with("__")), "{all:?}");
        // `set image` is a subcommand of a subcommand.
        assert_eq!(names(&offline("set im").0), vec!["image"]);
    }

    #[test]
    fn completes_flags_and_their_values() {
        let all = offline("status --");
        let flags = names(&all.0);
        for f in [
            "--output",
            "--selector",
            "--namespace",
            "--kubeconfig",
            "--context",
        ] {
            assert!(flags.contains(&f), "{f} in {flags:?}");
        }
        assert!(!flags.contains(&"-n"), "{flags:?}");
        assert!(names(&offline("status -").0).contains(&"-n"));
        assert_eq!(
            names(&offline("status -o w").0),
            vec!["wide"],
            "possible values of -o"
        );
        assert_eq!(
            names(&offline("status --output=j").0),
            vec!["--output=json"]
        );
        assert_eq!(names(&offline("completion z").0), vec!["zsh"]);
        // A file argument is the shell's to complete.
        assert_eq!(
            offline("status --kubeconfig "),
            (vec![], directive::DEFAULT)
        );
    }

    #[test]
    fn asks_the_cluster_for_types_names_and_namespaces() {
        let mut root = <crate::cli::Cli as clap::CommandFactory>::command();
        root.build();
        let want = |line: &str| plan(&root, &words(line)).want;
        assert_eq!(want("status "), Want::Types);
        assert_eq!(want("-n prod status dep"), Want::Types);
        assert_eq!(
            want("status deploy/w"),
            Want::Names {
                type_name: "deploy".into(),
                prefix: "deploy/".into()
            }
        );
        assert_eq!(
            want("trace deployment "),
            Want::Names {
                type_name: "deployment".into(),
                prefix: String::new()
            }
        );
        assert_eq!(want("trace deployment/web "), Want::Nothing);
        assert_eq!(want("status deploy/web "), Want::Types);
        assert_eq!(want("scale deployment/web --replicas "), Want::Nothing);
        assert_eq!(want("status -n "), Want::Namespaces);
        assert_eq!(want("status --context "), Want::Contexts);
        let p = plan(&root, &words("status -n prod --context=dev -A svc/"));
        assert_eq!(p.seen.namespace.as_deref(), Some("prod"));
        assert_eq!(p.seen.context.as_deref(), Some("dev"));
        assert!(p.seen.all_namespaces);
        // The cluster could not be read: nothing, and the shell adds nothing either.
        assert_eq!(offline("status "), (vec![], directive::ERROR));
    }
}
