//! The timeline as one self-contained HTML page: inline CSS and a few lines of inline script,
//! no external asset, so it can be mailed, attached to a ticket and opened offline.
//!
//! Every string from the log is attacker-influenced (a process picks its own name and
//! arguments), so everything goes through `esc`.

use std::fmt::Write as _;

use super::{Timeline, TreeNode};
use crate::sink::short_time;

/// Escape for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Controls and bidi overrides (a comm can reverse the text after it).
            c if crate::sink::needs_escape(c) && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --alert: #c0162b; --alert-bg: #fde8ea; --dim: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827; background: #f9fafb; }
header { padding: 16px 24px; background: #111827; color: #f9fafb; }
header h1 { margin: 0 0 4px; font-size: 20px; }
header p { margin: 0; color: #d1d5db; }
main { padding: 16px 24px 48px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.mono, td, .tree { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12.5px; }
.alert-card { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--alert); border-radius: 6px; padding: 10px 14px; margin: 8px 0; }
.alert-card .rule { font-weight: 700; color: var(--alert); }
.sev { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 11px; font-weight: 700; text-transform: uppercase; color: #fff; background: var(--alert); }
.sev-low { background: #2563eb; } .sev-medium { background: #d97706; } .sev-high { background: #dc2626; } .sev-critical { background: #7f1d1d; }
.alert-card p { margin: 6px 0 0; }
.alert-card .explanation { color: #374151; }
.tree ul { list-style: none; margin: 0; padding-left: 18px; border-left: 1px dashed #d1d5db; }
.tree > ul { border-left: none; padding-left: 0; }
.tree li { margin: 2px 0; white-space: pre-wrap; word-break: break-all; }
.tree .ctx { color: var(--dim); }
.tree .alerted { color: var(--alert); font-weight: 700; }
table { border-collapse: collapse; width: 100%; background: #fff; }
thead th { position: sticky; top: 0; background: #f3f4f6; text-align: left; font-size: 12px; padding: 6px 8px; border-bottom: 2px solid var(--line); }
td { padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
td:not(.details) { white-space: nowrap; }
td.details { white-space: pre-wrap; word-break: break-all; }
td.num { text-align: right; white-space: nowrap; }
tr.ev.alert { background: var(--alert-bg); outline: 2px solid var(--alert); }
tr.ev.alert td.marker { color: var(--alert); font-weight: 700; }
tr.ev:target { outline: 3px solid #2563eb; }
.muted { color: var(--dim); }
"#;

/// Render `tl` as a complete HTML document.
pub fn render(tl: &Timeline) -> String {
    let mut h = String::with_capacity(64 * 1024 + tl.rows.len() * 400);
    let title = format!("escapewatch timeline — {}", tl.subject);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    let window = tl.window_label();
    let _ = write!(
        h,
        "<header><h1>{}</h1><p>host {} · window {} (UTC) · {} events read, {} shown{} · {} alert(s)</p></header>\n<main>\n",
        esc(&title),
        esc(&tl.hosts.join(", ")),
        esc(&window),
        tl.events_read,
        tl.rows.len(),
        tl.omitted_note(),
        tl.alerts.len()
    );

    h.push_str("<section id=\"alerts\"><h2>Alerts</h2>\n");
    if tl.alerts.is_empty() {
        h.push_str("<p class=\"muted\">No alert in view.</p>\n");
    }
    for (i, a) in tl.alerts.iter().enumerate() {
        let al = &a.alert;
        let target = al
            .event_ids
            .first()
            .map(|id| format!("#ev-{}-{id}", a.session))
            .unwrap_or_default();
        let container = al
            .container
            .as_ref()
            .map_or("host".to_owned(), |c| c.id.clone());
        let _ = writeln!(
            h,
            "<article class=\"alert-card\" id=\"alert-{n}\" data-rule=\"{rule}\">\
             <span class=\"sev sev-{sev}\">{sev}</span> <span class=\"rule\">{rule}</span> \
             <span class=\"mono\">{time}</span> · {mitre} · container <span class=\"mono\">{container}</span> · \
             pid {pid} <span class=\"mono\">{comm}</span> · <a href=\"{target}\">event(s) {ids:?}</a>\
             <p>{summary}</p><p class=\"explanation\">{explanation}</p></article>",
            n = i + 1,
            rule = esc(&al.rule),
            sev = esc(al.severity.as_str()),
            time = esc(&short_time(&al.time)),
            mitre = esc(&al.mitre),
            container = esc(&container),
            pid = al.process.pid,
            comm = esc(&al.process.comm),
            target = esc(&target),
            ids = al.event_ids,
            summary = esc(&al.summary),
            explanation = esc(&al.explanation),
        );
    }
    h.push_str("</section>\n<section id=\"tree\"><h2>Process tree</h2>\
                <p class=\"muted\">Grey: ancestors outside the subject, shown for context. Red: raised an alert.</p>\
                <div class=\"tree\"><ul>\n");
    for n in &tl.tree {
        tree_html(&mut h, n);
    }
    h.push_str("</ul></div></section>\n<section id=\"events\"><h2>Events</h2>\n<table><thead><tr>\
                <th>time (UTC)</th><th>Δ s</th><th>id</th><th>pid</th><th>comm</th><th>container</th><th>kind</th><th>details</th><th>alert</th>\
                </tr></thead><tbody>\n");
    for r in &tl.rows {
        let alerted = !r.alerts.is_empty();
        let rules: Vec<String> = r
            .alerts
            .iter()
            .map(|&i| {
                let a = &tl.alerts[i].alert;
                format!(
                    "<a href=\"#alert-{}\">⚠ {} ({})</a>",
                    i + 1,
                    esc(&a.rule),
                    esc(a.severity.as_str())
                )
            })
            .collect();
        let data_rules: Vec<&str> = r
            .alerts
            .iter()
            .map(|&i| tl.alerts[i].alert.rule.as_str())
            .collect();
        let _ = writeln!(
            h,
            "<tr class=\"ev{cls}\" id=\"ev-{s}-{id}\"{data}><td>{time}</td><td class=\"num\">{off:+.3}</td>\
             <td class=\"num\">{id}</td><td class=\"num\">{pid}</td><td>{comm}</td><td>{container}</td>\
             <td>{kind}</td><td class=\"details\">{details}</td><td class=\"marker\">{rules}</td></tr>",
            cls = if alerted { " alert" } else { "" },
            s = r.session,
            id = r.id,
            data = if alerted {
                format!(" data-alert-rules=\"{}\"", esc(&data_rules.join(" ")))
            } else {
                String::new()
            },
            time = esc(&short_time(&r.time)),
            off = r.offset_s,
            pid = r.pid,
            comm = esc(&r.comm),
            container = esc(r.container.as_deref().unwrap_or("host")),
            kind = esc(&r.kind),
            details = esc(&r.details),
            rules = rules.join("<br>"),
        );
    }
    h.push_str("</tbody></table>\n");
    if tl.warnings > 0 {
        let _ = writeln!(
            h,
            "<p class=\"muted\">{} damaged line(s) or file(s) were skipped while reading.</p>",
            tl.warnings
        );
    }
    // Open at the first alerted event, as a responder would scroll to it first.
    h.push_str(
        "</section>\n</main>\n<script>\
         (function(){var r=document.querySelector('tr.ev.alert');\
         if(r&&!location.hash){r.scrollIntoView({block:'center'});}})();\
         </script>\n</body></html>\n",
    );
    h
}

fn tree_html(h: &mut String, n: &TreeNode) {
    let cls = if !n.alerts.is_empty() {
        "alerted"
    } else if n.in_subject {
        ""
    } else {
        "ctx"
    };
    let args = if n.args.len() > 1 {
        format!(" {}", n.args[1..].join(" "))
    } else {
        String::new()
    };
    let _ = write!(
        h,
        "<li><span class=\"{cls}\">[{pid}] <b>{comm}</b>  {exe}{args}{exit}{alerts}</span>",
        comm = esc(&n.comms.join(" → ")),
        pid = n.pid,
        exe = esc(if n.exe.is_empty() { "?" } else { &n.exe }),
        args = esc(&args),
        exit = n
            .exit_code
            .map(|c| format!("  ({})", super::exit_status(c)))
            .unwrap_or_default(),
        alerts = if n.alerts.is_empty() {
            String::new()
        } else {
            format!("  ⚠ {}", esc(&n.alerts.join(", ")))
        },
    );
    if !n.children.is_empty() {
        h.push_str("<ul>\n");
        for c in &n.children {
            tree_html(h, c);
        }
        h.push_str("</ul>");
    }
    h.push_str("</li>\n");
}
