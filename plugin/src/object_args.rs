//! One reading of the object arguments kubectl verbs take — `TYPE`, `TYPE/NAME`, `TYPE1,TYPE2`,
//! `TYPE NAME…` — for every verb (`status`, `trace`, `blame`, the change verbs, `break-glass`).

use crate::Error;

/// What `status`-like verbs were asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// No TYPE: every listable kind.
    Everything,
    /// TYPEs (all objects) and TYPE/NAMEs.
    Some {
        types: Vec<String>,
        named: Vec<(String, String)>,
    },
}

/// `TYPE/NAME` split, when the argument has a `/`: `Some(Err)` when one side is empty or the
/// name has another `/`.
fn slashed(arg: &str) -> Option<Result<(String, String), Error>> {
    let (t, n) = arg.split_once('/')?;
    Some(if t.is_empty() || n.is_empty() || n.contains('/') {
        Err(Error::Usage(format!("{arg:?} is not TYPE/NAME")))
    } else {
        Ok((t.to_string(), n.to_string()))
    })
}

/// Reads `TYPE`, `TYPE/NAME`, `TYPE1,TYPE2` and `TYPE NAME NAME…` like kubectl get.
pub fn selection(args: &[String]) -> Result<Selection, Error> {
    if args.is_empty() {
        return Ok(Selection::Everything);
    }
    let mut types = Vec::new();
    let mut named = Vec::new();
    if args.len() >= 2 && args.iter().all(|a| !a.contains('/')) {
        for t in args[0].split(',').filter(|t| !t.is_empty()) {
            for n in &args[1..] {
                named.push((t.to_string(), n.clone()));
            }
        }
        return Ok(Selection::Some { types, named });
    }
    for a in args {
        match slashed(a) {
            Some(pair) => named.push(pair?),
            None => types.extend(a.split(',').filter(|t| !t.is_empty()).map(str::to_string)),
        }
    }
    Ok(Selection::Some { types, named })
}

/// One object, `TYPE/NAME` or `TYPE NAME`, and the arguments after it. When the rest are
/// `KEY=…` pairs, the second word is the name only if it has no `=` and does not end in `-`.
pub fn object(
    args: &[String],
    rest_is_pairs: bool,
) -> Result<(String, String, Vec<String>), Error> {
    let first = args.first().ok_or_else(|| {
        Error::Usage("you must specify the type and name of an object, e.g. deployment/web".into())
    })?;
    if let Some(pair) = slashed(first) {
        let (t, n) = pair?;
        return Ok((t, n, args[1..].to_vec()));
    }
    match args.get(1) {
        Some(n) if !rest_is_pairs || (!n.contains('=') && !n.ends_with('-')) => {
            Ok((first.clone(), n.clone(), args[2..].to_vec()))
        }
        _ => Err(Error::Usage(format!(
            "you must specify the name of the {first} too: {first}/NAME or {first} NAME"
        ))),
    }
}

/// `TYPE/NAME`, or `TYPE` and a separate `NAME` (clap gives them apart).
pub fn type_and_name(resource: &str, name: Option<&str>) -> Result<(String, String), Error> {
    let args: Vec<String> = std::iter::once(resource)
        .chain(name)
        .map(str::to_string)
        .collect();
    match object(&args, false) {
        Ok((t, n, rest)) if rest.is_empty() => Ok((t, n)),
        _ => Err(Error::Usage(format!(
            "expected TYPE/NAME or TYPE NAME (e.g. deployment/web), got {:?}",
            args.join(" ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn selections_like_kubectl_get() {
        let s = |a: &[&str]| selection(&strings(a));
        assert_eq!(s(&[]).unwrap(), Selection::Everything);
        assert_eq!(
            s(&["deploy/web", "svc,cm"]).unwrap(),
            Selection::Some {
                types: vec!["svc".into(), "cm".into()],
                named: vec![("deploy".into(), "web".into())]
            }
        );
        assert_eq!(
            s(&["deploy", "web", "api"]).unwrap(),
            Selection::Some {
                types: vec![],
                named: vec![
                    ("deploy".into(), "web".into()),
                    ("deploy".into(), "api".into())
                ]
            }
        );
        assert!(s(&["deploy/"]).is_err());
        assert!(s(&["deploy/a/b"]).is_err());
    }

    /// Every verb reads an object the same way, and refuses the same malformed ones.
    #[test]
    fn one_object_reads_alike_for_every_verb() {
        for bad in ["/web", "deploy/", "deploy/a/b"] {
            assert!(type_and_name(bad, None).is_err(), "{bad}");
            assert!(object(&strings(&[bad]), false).is_err(), "{bad}");
            assert!(selection(&strings(&[bad])).is_err(), "{bad}");
        }
        assert_eq!(
            type_and_name("deploy/web", None).unwrap(),
            ("deploy".into(), "web".into())
        );
        assert_eq!(
            type_and_name("deploy", Some("web")).unwrap(),
            ("deploy".into(), "web".into())
        );
        assert!(type_and_name("deploy", None).is_err());
        assert!(type_and_name("deploy/web", Some("api")).is_err());
        assert_eq!(
            object(&strings(&["deploy", "web", "team=a"]), true).unwrap(),
            ("deploy".into(), "web".into(), strings(&["team=a"]))
        );
        assert!(object(&strings(&["deploy", "team=a"]), true).is_err());
        assert!(object(&strings(&["deploy", "team-"]), true).is_err());
    }
}
