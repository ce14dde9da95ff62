//! Check `guard`, answering: a server-side dry run of a harmless change (an annotation) to a
//! managed object shows whether the API server really calls the guard and the guard answers.
//! The guard turns a denial of a dry run into a warning ("dry-run only: the real change would be
//! denied: …"); an API server that cannot reach it says `failed calling webhook`. Pure: the
//! caller makes the request.

use super::guard::WEBHOOK_NAME;
use super::{Finding, Severity};

const CHECK: &str = "guard";
/// The annotation the dry run would set.
pub const PROBE_ANNOTATION: &str = "gitops-guard.dev/doctor-probe";

/// What the API server answered the dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `Warning` headers' texts.
    pub warnings: Vec<String>,
    /// The Status message of an error (empty on success).
    pub message: String,
}

/// The texts of `Warning` headers (`299 - "text"`, quotes inside escaped).
pub fn warning_text(header: &str) -> String {
    let text = header.trim();
    let text = text.strip_prefix("299 - ").unwrap_or(text);
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    text.replace("\\\"", "\"")
}

/// The finding for the dry run on `object` (`deployment/web in prod`); `patch`: the command
/// that repeats it by hand.
pub fn finding(object: &str, answer: &Answer, patch: &str) -> Finding {
    let subject = format!("dry run on {object}");
    let guard_said = answer.warnings.iter().find(|w| {
        w.starts_with("dry-run only: the real change would be denied")
            || w.starts_with("audit mode: this change would be denied")
    });
    let calling = format!("failed calling webhook \"{WEBHOOK_NAME}\"");
    if answer.message.contains(&calling) {
        return Finding::new(
            Severity::Fail,
            CHECK,
            subject,
            format!(
                "the API server could not call the guard: {}",
                answer.message
            ),
            "the guard is not answering: Fail entries refuse every routed write, Ignore entries let them through unchecked",
            format!(
                "{patch}  # again once the guard answers; see kubectl get pods,endpoints -n <the guard's namespace>"
            ),
        );
    }
    if let Some(w) = guard_said {
        return Finding::new(
            Severity::Ok,
            CHECK,
            subject,
            format!("the guard answered: {w}"),
            "the API server calls the guard for managed objects, and it judges them",
            "",
        );
    }
    if answer
        .message
        .contains(&format!("\"{WEBHOOK_NAME}\" denied"))
    {
        return Finding::new(
            Severity::Ok,
            CHECK,
            subject,
            format!("the guard answered: {}", answer.message),
            "the API server calls the guard for managed objects, and it judges them",
            "",
        );
    }
    if (200..300).contains(&answer.status) {
        return Finding::new(
            Severity::Fail,
            CHECK,
            subject,
            format!(
                "an annotation ({PROBE_ANNOTATION}) on a managed object passed a dry run without a word from the guard"
            ),
            "the guard is not called for it (rules, selectors), or it is down behind failurePolicy Ignore — unless doctor runs as an identity the guard trusts (run it as a person then)",
            format!(
                "{patch}  # shows the same; kubectl get validatingwebhookconfigurations -l app.kubernetes.io/part-of=gitops-guard -o yaml"
            ),
        );
    }
    Finding::new(
        Severity::Warn,
        CHECK,
        subject,
        format!(
            "not checked: the dry run was refused ({}): {}",
            answer.status, answer.message
        ),
        "whether the guard answers is unknown",
        patch,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_api_server_answered() {
        let answer = |status: u16, warnings: &[&str], message: &str| Answer {
            status,
            warnings: warnings.iter().map(|w| w.to_string()).collect(),
            message: message.into(),
        };
        let cases = [
            (
                answer(
                    200,
                    &[
                        "dry-run only: the real change would be denied: deployment/web in prod is managed by Flux",
                    ],
                    "",
                ),
                Severity::Ok,
                "the guard answered: dry-run only: the real change would be denied: deployment/web in prod is managed by Flux",
            ),
            (
                answer(200, &["audit mode: this change would be denied: x"], ""),
                Severity::Ok,
                "the guard answered: audit mode: this change would be denied: x",
            ),
            (
                answer(200, &["some other webhook says hi"], ""),
                Severity::Fail,
                "an annotation (gitops-guard.dev/doctor-probe) on a managed object passed a dry run without a word from the guard",
            ),
            (
                answer(
                    500,
                    &[],
                    "Internal error occurred: failed calling webhook \"guard.gitops-guard.dev\": Post \"https://127.0.0.1:1/validate?timeout=3s\": dial tcp 127.0.0.1:1: connect: connection refused",
                ),
                Severity::Fail,
                "the API server could not call the guard: Internal error occurred: failed calling webhook \"guard.gitops-guard.dev\": Post \"https://127.0.0.1:1/validate?timeout=3s\": dial tcp 127.0.0.1:1: connect: connection refused",
            ),
            (
                answer(
                    400,
                    &[],
                    "admission webhook \"guard.gitops-guard.dev\" denied the request: no",
                ),
                Severity::Ok,
                "the guard answered: admission webhook \"guard.gitops-guard.dev\" denied the request: no",
            ),
            (
                answer(403, &[], "forbidden"),
                Severity::Warn,
                "not checked: the dry run was refused (403): forbidden",
            ),
        ];
        for (a, severity, text) in cases {
            let f = finding("deployment/web in prod", &a, "kubectl annotate …");
            assert_eq!((f.severity, f.finding.as_str()), (severity, text));
            assert_eq!(f.subject, "dry run on deployment/web in prod");
            assert_eq!(f.fix.is_empty(), severity == Severity::Ok);
        }
    }

    #[test]
    fn warning_headers() {
        assert_eq!(
            warning_text(r#"299 - "dry-run only: set it to \"ana\"""#),
            r#"dry-run only: set it to "ana""#
        );
        assert_eq!(warning_text("plain"), "plain");
    }
}
