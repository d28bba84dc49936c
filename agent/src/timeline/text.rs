//! The timeline as terminal text: alerts, process tree, then the events in order.

use std::fmt::Write as _;

use super::{Timeline, TreeNode};
use crate::sink::{one_line, short_container, short_time};

/// Longest details cell in the terminal (the HTML page shows everything).
const MAX_DETAILS: usize = 110;

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn alert(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// Render `tl`; `color` adds ANSI colours (alert rows red, context dim).
pub fn render(tl: &Timeline, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        st.bold(&format!("escapewatch timeline — {}", one_line(&tl.subject)))
    );
    let window = one_line(&tl.window_label());
    let _ = writeln!(
        out,
        "host {} · window {window} · {} events read, {} shown{} · {} alert(s)",
        one_line(&tl.hosts.join(", ")),
        tl.events_read,
        tl.rows.len(),
        tl.omitted_note(),
        tl.alerts.len()
    );

    let _ = writeln!(out, "\n{}", st.bold("ALERTS"));
    if tl.alerts.is_empty() {
        let _ = writeln!(out, "  none in view");
    }
    for (i, a) in tl.alerts.iter().enumerate() {
        let al = &a.alert;
        let _ = writeln!(
            out,
            "  {} {}  {}  {}  pid {} {}  events {:?}",
            st.alert(&format!("[{}]", i + 1)),
            one_line(&short_time(&al.time)),
            st.alert(&al.severity.as_str().to_uppercase()),
            st.alert(&one_line(&al.rule)),
            al.process.pid,
            one_line(&al.process.comm),
            al.event_ids
        );
        let _ = writeln!(out, "      {}", one_line(&al.summary));
    }

    let _ = writeln!(
        out,
        "\n{}  {}",
        st.bold("PROCESS TREE"),
        st.dim("(dim: ancestors outside the subject; ⚠ raised an alert)")
    );
    for (i, root) in tl.tree.iter().enumerate() {
        tree_lines(&mut out, &st, root, "  ", i + 1 == tl.tree.len(), true);
    }

    let _ = writeln!(out, "\n{}", st.bold("EVENTS"));
    let _ = writeln!(
        out,
        "   {:<23}  {:>9}  {:>6}  {:>7}  {:<15}  {:<13}  {:<14}  DETAILS",
        "TIME (UTC)", "Δ s", "ID", "PID", "COMM", "CONTAINER", "KIND"
    );
    for r in &tl.rows {
        let container = r
            .container
            .as_deref()
            .map_or_else(|| "host".to_owned(), |c| one_line(&short_container(c)));
        let mut details = one_line(&r.details);
        if details.chars().count() > MAX_DETAILS {
            details = details.chars().take(MAX_DETAILS).collect::<String>() + "…";
        }
        let line = format!(
            "{:<23}  {:>+9.3}  {:>6}  {:>7}  {:<15}  {:<13}  {:<14}  {}",
            one_line(&short_time(&r.time)),
            r.offset_s,
            r.id,
            r.pid,
            clip(&one_line(&r.comm), 15),
            clip(&container, 13),
            clip(&one_line(&r.kind), 14),
            details
        );
        if r.alerts.is_empty() {
            let _ = writeln!(out, "   {line}");
        } else {
            let rules: Vec<String> = r
                .alerts
                .iter()
                .map(|&i| {
                    let a = &tl.alerts[i].alert;
                    format!(
                        "[{}] {} ({})",
                        i + 1,
                        one_line(&a.rule),
                        a.severity.as_str()
                    )
                })
                .collect();
            let _ = writeln!(out, "{}", st.alert(&format!(">> {line}")));
            let _ = writeln!(
                out,
                "{}",
                st.alert(&format!("   {:>38}⚠ ALERT {}", "", rules.join(", ")))
            );
        }
    }
    if tl.warnings > 0 {
        let _ = writeln!(
            out,
            "\n{} damaged line(s) or file(s) were skipped (see the warnings above)",
            tl.warnings
        );
    }
    out
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn tree_lines(out: &mut String, st: &Style, n: &TreeNode, prefix: &str, last: bool, root: bool) {
    let branch = if root {
        ""
    } else if last {
        "└─ "
    } else {
        "├─ "
    };
    let args = if n.args.len() > 1 {
        format!(" {}", n.args[1..].join(" "))
    } else {
        String::new()
    };
    let mut label = format!(
        "[{}] {}  {}{}",
        n.pid,
        n.comms.join(" → "),
        if n.exe.is_empty() { "?" } else { &n.exe },
        args
    );
    label = one_line(&label);
    if label.chars().count() > 100 {
        label = label.chars().take(100).collect::<String>() + "…";
    }
    if let Some(c) = &n.exit_code {
        label.push_str(&format!("  ({})", super::exit_status(*c)));
    }
    let label = if !n.alerts.is_empty() {
        st.alert(&format!("{label}  ⚠ {}", one_line(&n.alerts.join(", "))))
    } else if n.in_subject {
        label
    } else {
        st.dim(&label)
    };
    let _ = writeln!(out, "{prefix}{branch}{label}");
    let child_prefix = if root {
        prefix.to_owned()
    } else if last {
        format!("{prefix}   ")
    } else {
        format!("{prefix}│  ")
    };
    for (i, c) in n.children.iter().enumerate() {
        tree_lines(out, st, c, &child_prefix, i + 1 == n.children.len(), false);
    }
}
