//! Check `guard`, certificates: the CA the webhook configurations trust (their `caBundle`) and
//! the guard's serving certificate (its `<fullname>-tls` Secret) are valid for a while yet. An
//! expired one is a guard the API server cannot call: Fail entries refuse every routed write,
//! Ignore entries pass them unchecked. Pure: the caller reads the objects.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use x509_parser::pem::Pem;

use super::{Finding, Severity};

/// Warn this long before a certificate expires.
pub const WARN_DAYS: i64 = 30;
const CHECK: &str = "guard";

/// One certificate as read: its subject's common name (or the whole subject) and its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    pub name: String,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
}

/// Every certificate in a PEM text (a bundle may hold several).
pub fn parse_pem(pem: &[u8]) -> Result<Vec<Cert>, String> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("not PEM: {e}"))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let cert = block
            .parse_x509()
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map_or_else(|| subject.to_string(), str::to_string);
        out.push(Cert {
            name,
            not_after: cert.validity().not_after.timestamp(),
        });
    }
    if out.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(out)
}

/// A base64 field (a `caBundle`, a Secret's `data`) holding PEM.
pub fn parse_base64_pem(text: &str) -> Result<Vec<Cert>, String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    parse_pem(&bytes)
}

fn date(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| secs.to_string())
}

/// The finding for the certificates of `subject` (`what`: "CA (caBundle)", "serving certificate
/// tls.crt"): the one that ends first decides. `now`: seconds since the epoch. `fix`: how to get
/// new ones.
pub fn expiry(subject: &str, what: &str, certs: &[Cert], now: i64, fix: &str) -> Option<Finding> {
    let first = certs.iter().min_by_key(|c| c.not_after)?;
    let days = (first.not_after - now).div_euclid(86_400);
    let on = date(first.not_after);
    let (severity, finding, why, fix) = if first.not_after <= now {
        (
            Severity::Fail,
            format!("{what} {} expired on {on}", first.name),
            "the API server cannot call the guard: Fail entries refuse every routed write, Ignore entries let them through unchecked",
            fix,
        )
    } else if days < WARN_DAYS {
        (
            Severity::Warn,
            format!("{what} {} expires in {days} day(s), on {on}", first.name),
            "once it expires the API server cannot call the guard: renew it before then",
            fix,
        )
    } else {
        (
            Severity::Ok,
            format!("{what} {} valid until {on}", first.name),
            "the API server can call the guard over TLS",
            "",
        )
    };
    Some(Finding::new(severity, CHECK, subject, finding, why, fix))
}

/// How to get a new CA and serving certificate from the chart (`namespace`, `fullname`: where
/// the guard runs).
pub fn renew_fix(namespace: &str, fullname: &str) -> String {
    format!(
        "kubectl delete secret {fullname}-tls -n {namespace} && helm upgrade gitops-guard charts/gitops-guard -n {namespace} --reuse-values  # the chart issues a new CA and certificate; with certManager.enabled: kubectl describe certificate -n {namespace}"
    )
}

/// The CA of every distinct `caBundle` among the guard's webhook configurations: one finding a
/// bundle, about the first configuration (by name) that carries it.
pub fn ca_bundles(configs: &[Value], now: i64, fix: &str) -> Vec<Finding> {
    // bundle → configuration names
    let mut bundles: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in configs {
        let name = c
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for w in c
            .get("webhooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(b) = w
                .pointer("/clientConfig/caBundle")
                .and_then(Value::as_str)
                .filter(|b| !b.is_empty())
            {
                bundles.entry(b).or_default().insert(name);
            }
        }
    }
    let mut out = Vec::new();
    for (bundle, names) in bundles {
        let first = names.iter().next().copied().unwrap_or_default();
        let subject = format!("ValidatingWebhookConfiguration {first}");
        let what = match names.len() {
            1 => "CA (caBundle)".to_string(),
            n => format!("CA (caBundle of {n} configurations)"),
        };
        match parse_base64_pem(bundle) {
            Ok(certs) => out.extend(expiry(&subject, &what, &certs, now, fix)),
            Err(e) => out.push(Finding::new(
                Severity::Warn,
                CHECK,
                subject,
                format!("{what} not read: {e}"),
                "whether the API server can call the guard over TLS is unknown",
                format!("kubectl get validatingwebhookconfiguration {first} -o jsonpath='{{.webhooks[0].clientConfig.caBundle}}' | base64 -d | openssl x509 -noout -enddate"),
            )),
        }
    }
    out
}

/// The serving certificate in the guard's TLS Secret (`data["tls.crt"]`).
pub fn serving(secret: &Value, subject: &str, now: i64, fix: &str) -> Option<Finding> {
    let parsed = secret
        .pointer("/data/tls.crt")
        .and_then(Value::as_str)
        .ok_or_else(|| "it has no tls.crt".to_string())
        .and_then(parse_base64_pem);
    match parsed {
        Ok(certs) => expiry(subject, "serving certificate", &certs, now, fix),
        Err(e) => Some(Finding::new(
            Severity::Warn,
            CHECK,
            subject,
            format!("serving certificate not read: {e}"),
            "whether the guard's certificate is still valid is unknown",
            fix,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2027-01-15T00:00:00Z.
    const NOW: i64 = 1_799_971_200;

    /// A self-signed certificate that ends `days` after [`NOW`] (at midnight UTC).
    fn pem(days: i64, cn: &str) -> String {
        let end = jiff::Timestamp::from_second(NOW + days * 86_400)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        let mut params = rcgen::CertificateParams::new(vec!["guard.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after =
            rcgen::date_time_ymd(i32::from(end.year()), end.month() as u8, end.day() as u8);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn severity_by_days_left() {
        let now = NOW;
        let cases = [
            (400, Severity::Ok, "valid until"),
            (30, Severity::Ok, "valid until"),
            (29, Severity::Warn, "expires in 29 day(s)"),
            (1, Severity::Warn, "expires in 1 day(s)"),
            (0, Severity::Fail, "expired on"),
            (-3, Severity::Fail, "expired on"),
        ];
        for (days, severity, says) in cases {
            let certs = parse_pem(pem(days, "gitops-guard-ca").as_bytes()).unwrap();
            let f = expiry(
                "ValidatingWebhookConfiguration gg",
                "CA (caBundle)",
                &certs,
                now,
                "renew",
            )
            .unwrap();
            assert_eq!(f.severity, severity, "{days} days: {f:?}");
            assert!(
                f.finding.starts_with("CA (caBundle) gitops-guard-ca "),
                "{f:?}"
            );
            assert!(f.finding.contains(says), "{days} days: {f:?}");
            assert_eq!(f.fix.is_empty(), severity == Severity::Ok);
        }
    }

    #[test]
    fn the_first_to_expire_in_a_bundle_decides() {
        let now = NOW;
        let bundle = format!("{}{}", pem(400, "new-ca"), pem(10, "old-ca"));
        let encoded = STANDARD.encode(bundle);
        let certs = parse_base64_pem(&encoded).unwrap();
        assert_eq!(certs.len(), 2);
        let f = expiry("s", "CA (caBundle)", &certs, now, "renew").unwrap();
        assert_eq!(f.severity, Severity::Warn);
        assert!(
            f.finding
                .starts_with("CA (caBundle) old-ca expires in 10 day(s)")
        );
    }

    #[test]
    fn unreadable_bundles_say_why() {
        assert!(
            parse_base64_pem("%%%")
                .unwrap_err()
                .starts_with("not base64")
        );
        assert_eq!(
            parse_base64_pem(&STANDARD.encode("hello")).unwrap_err(),
            "no certificate in it"
        );
        assert!(expiry("s", "x", &[], 0, "").is_none());
        assert!(renew_fix("gg", "guard").starts_with(
            "kubectl delete secret guard-tls -n gg && helm upgrade gitops-guard charts/gitops-guard -n gg --reuse-values"
        ));
    }

    #[test]
    fn one_finding_a_bundle_and_the_secret() {
        let now = NOW;
        let ca = STANDARD.encode(pem(10, "gitops-guard-ca"));
        let vwc = |name: &str, bundle: &str| {
            serde_json::json!({"metadata": {"name": name},
                "webhooks": [{"clientConfig": {"caBundle": bundle}}]})
        };
        let found = ca_bundles(
            &[
                vwc("gg-scale", &ca),
                vwc("gg-custody", &ca),
                vwc("gg-x", ""),
            ],
            now,
            "renew",
        );
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].subject,
            "ValidatingWebhookConfiguration gg-custody"
        );
        assert_eq!(
            (found[0].severity, found[0].finding.as_str()),
            (
                Severity::Warn,
                "CA (caBundle of 2 configurations) gitops-guard-ca expires in 10 day(s), on 2027-01-25"
            )
        );
        let bad = ca_bundles(&[vwc("gg", "bm90IGEgY2VydA==")], now, "renew");
        assert_eq!(bad[0].severity, Severity::Warn);
        assert_eq!(
            bad[0].finding,
            "CA (caBundle) not read: no certificate in it"
        );

        let expired = STANDARD.encode(pem(-1, "gitops-guard"));
        let secret = serde_json::json!({"data": {"tls.crt": expired}});
        let f = serving(&secret, "Secret gg/guard-tls", now, "renew").unwrap();
        assert_eq!(
            (f.severity, f.finding.as_str(), f.fix.as_str()),
            (
                Severity::Fail,
                "serving certificate gitops-guard expired on 2027-01-14",
                "renew"
            )
        );
        let empty = serving(
            &serde_json::json!({"data": {}}),
            "Secret gg/guard-tls",
            now,
            "renew",
        )
        .unwrap();
        assert_eq!(
            empty.finding,
            "serving certificate not read: it has no tls.crt"
        );
    }
}
