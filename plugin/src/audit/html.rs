//! `audit -o html`: one self-contained page a person opens in a browser. The summary first, then
//! the owners, objects, exceptions, break-glass windows and the guard's coverage as tables. A
//! small inline script filters the tables by namespace, owner and state (selects at the top, or
//! the page's address: `report.html#namespace=team&state=drift`); rows that do not match are
//! taken out of the table, so what the page shows is what its DOM holds. Styles and script are
//! inline, and a Content-Security-Policy forbids every fetch: the page works offline and cannot
//! call out.
//!
//! The page names the sha256 of the JSON report for the same state (the exact bytes `audit -o
//! json` writes, with the same scope, `--as-of` and `--since`), so a page and a JSON file can be
//! matched: `sha256sum report.json`.

use std::collections::BTreeSet;

use super::{
    Report, back_text, change_text, exceptions_table, owners_table, summary_lines, windows_table,
};
use crate::doctor::Severity;

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, for element text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em;color:#1b1f24;background:#fff}
h1{font-size:1.6em;margin:0 0 .2em}h2{font-size:1.2em;margin:1.6em 0 .5em}
.meta{color:#57606a;margin:0 0 1em}code{font:12px ui-monospace,monospace;background:#f3f4f6;padding:1px 4px;border-radius:3px}
#summary{display:grid;grid-template-columns:repeat(auto-fill,minmax(13em,1fr));gap:.6em;margin:0;padding:0}
.stat{border:1px solid #d0d7de;border-radius:6px;padding:.6em .8em;margin:0}
.stat dt{color:#57606a;font-size:.85em}.stat dd{margin:0;font-size:1.4em;font-weight:600}
.stat dd .detail{display:block;font-size:.6em;font-weight:400;color:#57606a}
.stat.bad{border-color:#cf222e;background:#fff5f5}.stat.good{border-color:#1a7f37;background:#f4fff6}
#filters{display:flex;gap:1em;flex-wrap:wrap;align-items:end;margin:1.5em 0 0;padding:.8em;background:#f6f8fa;border-radius:6px}
#filters label{display:flex;flex-direction:column;font-size:.85em;color:#57606a}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0}
td.state{font-weight:600;white-space:nowrap}
tr[data-state=drift] td.state,tr[data-state=missing] td.state,tr[data-state=stray] td.state,tr[data-state=error] td.state{color:#cf222e}
tr[data-state=in-sync] td.state{color:#1a7f37}
.count{color:#57606a;font-size:.85em;font-weight:400}
.sev-fail{color:#cf222e;font-weight:600}.sev-warn{color:#9a6700}.sev-ok{color:#1a7f37}
";

/// Reads the filter from the address (`#namespace=…&owner=…&state=…`, or the same as a query),
/// keeps the selects and the address in step, and puts only the matching rows in each table.
const SCRIPT: &str = "
(function(){
  var keys=['namespace','owner','state'];
  var tables=Array.prototype.slice.call(document.querySelectorAll('table[data-filterable]'));
  var all=tables.map(function(t){return Array.prototype.slice.call(t.tBodies[0].rows);});
  function wanted(){
    var p=new URLSearchParams((location.hash||'').replace(/^#/,'')||location.search.replace(/^\\?/,''));
    var f={};keys.forEach(function(k){f[k]=p.get(k)||'';});return f;
  }
  function apply(f){
    keys.forEach(function(k){var s=document.getElementById('filter-'+k);if(s){s.value=f[k];if(s.value!==f[k]){s.value='';}}});
    tables.forEach(function(t,i){
      var rows=all[i].filter(function(r){
        return keys.every(function(k){var v=r.getAttribute('data-'+k);return !f[k]||v===null||v===f[k];});
      });
      var body=t.tBodies[0];
      while(body.firstChild){body.removeChild(body.firstChild);}
      rows.forEach(function(r){body.appendChild(r);});
      var c=document.getElementById(t.id+'-count');
      if(c){c.textContent=rows.length+' of '+all[i].length;}
    });
  }
  keys.forEach(function(k){
    var s=document.getElementById('filter-'+k);
    if(!s){return;}
    s.addEventListener('change',function(){
      var f={};keys.forEach(function(k){var e=document.getElementById('filter-'+k);f[k]=e?e.value:'';});
      var p=new URLSearchParams();keys.forEach(function(k){if(f[k]){p.set(k,f[k]);}});
      history.replaceState(null,'','#'+p.toString());
      apply(f);
    });
  });
  window.addEventListener('hashchange',function(){apply(wanted());});
  apply(wanted());
})();
";

fn select(out: &mut String, key: &str, label: &str, values: &BTreeSet<String>) {
    out.push_str(&format!(
        "<label for=\"filter-{key}\">{label}<select id=\"filter-{key}\"><option value=\"\">all</option>"
    ));
    for v in values {
        let v = escape(v);
        out.push_str(&format!("<option value=\"{v}\">{v}</option>"));
    }
    out.push_str("</select></label>");
}

fn cells(out: &mut String, cells: &[String], state_column: Option<usize>) {
    for (i, c) in cells.iter().enumerate() {
        if Some(i) == state_column {
            out.push_str(&format!("<td class=\"state\">{}</td>", escape(c)));
        } else {
            out.push_str(&format!("<td>{}</td>", escape(c)));
        }
    }
}

fn head(out: &mut String, id: &str, title: &str, header: &[String], filterable: bool) {
    out.push_str(&format!(
        "<section id=\"{id}-section\"><h2>{title} <span class=\"count\" id=\"{id}-count\"></span></h2><table id=\"{id}\"{}><thead><tr>",
        if filterable { " data-filterable" } else { "" }
    ));
    for h in header {
        out.push_str(&format!("<th>{}</th>", escape(h)));
    }
    out.push_str("</tr></thead><tbody>");
}

const TAIL: &str = "</tbody></table></section>\n";

/// The page for `report`; `json_sha256`: the sha256 of its `-o json` bytes ([`super::json_bytes`]).
pub fn page(report: &Report, json_sha256: &str) -> String {
    let mut out = String::new();
    let scope = match &report.scope.namespace {
        Some(ns) => format!("namespace {ns}"),
        None => "all namespaces".into(),
    };
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!(
        "<title>GitOps audit: {}</title>\n<style>{STYLE}</style></head>\n<body>\n",
        escape(&scope)
    ));
    out.push_str(&format!("<h1>GitOps audit of {}</h1>\n", escape(&scope)));
    let as_of = report
        .as_of
        .as_ref()
        .map(|t| format!("As of <time>{}</time>. ", escape(t)))
        .unwrap_or_default();
    out.push_str(&format!(
        "<p class=\"meta\">{as_of}Break-glass period: {}. Guarded namespaces: {}.<br>JSON report (<code>kubectl gitops audit -o json</code>, same scope and state) sha256: <code id=\"json-sha256\">{json_sha256}</code></p>\n",
        escape(&report.period),
        escape(&if report.scope.guarded_namespaces.is_empty() {
            "none".to_string()
        } else {
            report.scope.guarded_namespaces.join(", ")
        }),
    ));

    // The summary.
    let s = &report.summary;
    out.push_str("<h2>Summary</h2>\n<dl id=\"summary\">\n");
    for (key, value) in summary_lines(report) {
        let (number, detail) = match value.split_once(' ') {
            Some((n, d)) if n.chars().all(|c| c.is_ascii_digit()) => (n.to_string(), d.to_string()),
            // The guard: `installed, answering: yes; doctor: …` → `installed` and the rest.
            _ => match value.split_once([',', ';']) {
                Some((head, rest)) => (head.to_string(), rest.trim().to_string()),
                None => (value.clone(), String::new()),
            },
        };
        let class = match key {
            "in the state Git says" if s.in_sync == s.managed => " good",
            "drifted"
            | "missing (in Git, not in the cluster)"
            | "strays (unmanaged in guarded namespaces)"
            | "errors"
                if number != "0" =>
            {
                " bad"
            }
            "guard" if !report.coverage.installed || report.coverage.answering == "no" => " bad",
            _ => "",
        };
        let id = key
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!("<span class=\"detail\">{}</span>", escape(&detail))
        };
        out.push_str(&format!(
            "<div class=\"stat{class}\" id=\"stat-{id}\"><dt>{}</dt><dd><span class=\"value\">{}</span>{detail}</dd></div>\n",
            escape(key),
            escape(&number)
        ));
    }
    out.push_str("</dl>\n");

    // The filters.
    let namespaces: BTreeSet<String> = report
        .objects
        .iter()
        .map(|o| o.namespace.clone())
        .chain(report.break_glass.iter().map(|w| w.namespace.clone()))
        .filter(|n| !n.is_empty())
        .collect();
    let owners: BTreeSet<String> = report
        .objects
        .iter()
        .filter_map(|o| o.owner.clone())
        .chain(report.owners.iter().map(|o| o.owner.clone()))
        .collect();
    let states: BTreeSet<String> = report.objects.iter().map(|o| o.state.to_string()).collect();
    out.push_str("<form id=\"filters\" onsubmit=\"return false\">");
    select(&mut out, "namespace", "Namespace", &namespaces);
    select(&mut out, "owner", "Owner", &owners);
    select(&mut out, "state", "State", &states);
    out.push_str("</form>\n");

    // Owners: filtered by owner.
    let t = owners_table(report);
    head(&mut out, "owners", "Owners", &t.header, true);
    for (o, row) in report.owners.iter().zip(&t.rows) {
        out.push_str(&format!(
            "<tr data-owner=\"{}\" title=\"{}\">",
            escape(&o.owner),
            escape(&o.verified.detail)
        ));
        cells(&mut out, row, None);
        out.push_str("</tr>\n");
    }
    out.push_str(TAIL);

    // Objects: filtered by namespace, owner and state.
    head(
        &mut out,
        "objects",
        "Objects",
        &[
            "NAMESPACE",
            "RESOURCE",
            "OWNER",
            "STATE",
            "WHY",
            "DRIFT",
            "FILE",
            "LAST COMMIT",
            "AUTHOR",
            "DATE",
            "EXCEPTIONS",
        ]
        .map(String::from),
        true,
    );
    for o in &report.objects {
        out.push_str(&format!(
            "<tr data-namespace=\"{}\" data-owner=\"{}\" data-state=\"{}\">",
            escape(&o.namespace),
            escape(o.owner.as_deref().unwrap_or("")),
            escape(o.state)
        ));
        let why = o
            .why
            .map(str::to_string)
            .or_else(|| o.note.clone())
            .or_else(|| o.error.clone())
            .unwrap_or_default();
        let drift = o
            .fields
            .iter()
            .map(|f| {
                let by = f
                    .manager
                    .as_deref()
                    .map(|m| format!(" by {m}"))
                    .unwrap_or_default();
                let allowed = f
                    .allowed_by
                    .as_deref()
                    .map(|a| format!(", allowed by {a}"))
                    .unwrap_or_default();
                format!("{}{by}{allowed}", f.field)
            })
            .collect::<Vec<_>>()
            .join("; ");
        let c = o.last_commit.as_ref();
        cells(
            &mut out,
            &[
                o.namespace.clone(),
                o.resource.clone(),
                o.owner.clone().unwrap_or_default(),
                o.state.to_string(),
                why,
                drift,
                o.file.clone().unwrap_or_default(),
                c.map(|c| c.short().to_string()).unwrap_or_default(),
                c.map(|c| c.author.clone()).unwrap_or_default(),
                c.map(|c| c.date.to_string()).unwrap_or_default(),
                o.exceptions.join("; "),
            ],
            Some(3),
        );
        out.push_str("</tr>\n");
    }
    out.push_str(TAIL);

    // Exceptions in force: filtered by namespace.
    let t = exceptions_table(report);
    head(
        &mut out,
        "exceptions",
        "Exceptions in force",
        &t.header,
        true,
    );
    for (e, row) in report.exceptions.iter().zip(&t.rows) {
        out.push_str(&format!(
            "<tr data-namespace=\"{}\">",
            escape(e.namespace.as_deref().unwrap_or(""))
        ));
        cells(&mut out, row, None);
        out.push_str("</tr>\n");
    }
    out.push_str(TAIL);

    // Break-glass windows: filtered by namespace.
    let t = windows_table(report);
    head(
        &mut out,
        "break-glass",
        "Break-glass windows",
        &t.header,
        true,
    );
    for (w, row) in report.break_glass.iter().zip(&t.rows) {
        out.push_str(&format!("<tr data-namespace=\"{}\">", escape(&w.namespace)));
        let mut row = row.clone();
        // One change, and one answer, a line.
        if let Some(changes) = row.get_mut(8) {
            *changes = w
                .changes
                .iter()
                .map(change_text)
                .collect::<Vec<_>>()
                .join("\n");
        }
        if let Some(back) = row.get_mut(9) {
            *back = w
                .back_in_git
                .iter()
                .map(back_text)
                .collect::<Vec<_>>()
                .join("\n");
        }
        for (i, c) in row.iter().enumerate() {
            let style = if i >= 8 {
                " style=\"white-space:pre-line\""
            } else {
                ""
            };
            out.push_str(&format!("<td{style}>{}</td>", escape(c)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str(TAIL);

    // Coverage: every finding.
    let guard = report.coverage.guard();
    out.push_str(&format!(
        "<section id=\"coverage-section\"><h2>Guard coverage</h2><p id=\"guard\">Guard: {}</p>\n",
        escape(&guard)
    ));
    if let Some(e) = &report.coverage.error {
        out.push_str(&format!("<p class=\"sev-fail\">{}</p>\n", escape(e)));
    }
    out.push_str("<table id=\"coverage\"><thead><tr><th>STATUS</th><th>CHECK</th><th>SUBJECT</th><th>FINDING</th><th>WHY</th><th>FIX</th></tr></thead><tbody>\n");
    for f in &report.coverage.findings {
        let class = match f.severity {
            Severity::Fail => "sev-fail",
            Severity::Warn => "sev-warn",
            Severity::Ok => "sev-ok",
        };
        out.push_str(&format!("<tr><td class=\"{class}\">{}</td>", f.severity));
        cells(
            &mut out,
            &[
                f.check.to_string(),
                f.subject.clone(),
                f.finding.clone(),
                f.why.clone(),
                f.fix.clone(),
            ],
            None,
        );
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></section>\n");
    out.push_str(&format!("<script>{SCRIPT}</script>\n</body></html>\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_html_reads_as_markup() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
