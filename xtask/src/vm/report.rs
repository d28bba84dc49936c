//! Reading the console protocol back and writing target/vm/results.md.
//!
//! Lines (anywhere in a console line: kernel messages may share it):
//! `ESCAPEWATCH-VM-UNAME: …`, `ESCAPEWATCH-VM-LSM: …`, `ESCAPEWATCH-VM-HOOK: <agent line>`,
//! `ESCAPEWATCH-VM: <test> ok|FAILED <secs>s`, `ESCAPEWATCH-VM-DONE pass=N fail=M`.

use std::{collections::BTreeMap, fmt::Write as _, fs};

use anyhow::{Result, bail};

use super::{LEFT_OUT, Outcome, vm_dir};

/// What one console log says.
#[derive(Default)]
struct Console {
    uname: Option<String>,
    lsm: Option<String>,
    hooks: Vec<String>,
    /// rule → hooks that served its alerts (the tests' hooks.tsv).
    served: BTreeMap<String, String>,
    /// test → (result, seconds)
    results: BTreeMap<String, (String, String)>,
    done: Option<String>,
}

fn after<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.find(tag).map(|i| line[i + tag.len()..].trim())
}

fn parse(text: &str) -> Console {
    let mut c = Console::default();
    for line in text.lines() {
        if let Some(v) = after(line, "ESCAPEWATCH-VM-UNAME: ") {
            c.uname = Some(v.to_owned());
        } else if let Some(v) = after(line, "ESCAPEWATCH-VM-LSM: ") {
            c.lsm = Some(v.to_owned());
        } else if let Some(v) = after(line, "ESCAPEWATCH-VM-HOOK: ") {
            c.hooks.push(hook_summary(v));
        } else if let Some(v) = after(line, "ESCAPEWATCH-VM-SERVED: ") {
            let mut f = v.split('\t').skip(1);
            if let (Some(rule), Some(hooks)) = (f.next(), f.next()) {
                // Several scenarios may alert one rule through different hooks: keep each.
                let all = c.served.entry(rule.to_owned()).or_default();
                for h in hooks.split(',') {
                    if !all.split(',').any(|seen| seen == h) {
                        if !all.is_empty() {
                            all.push(',');
                        }
                        all.push_str(h);
                    }
                }
            }
        } else if let Some(v) = after(line, "ESCAPEWATCH-VM-DONE ") {
            c.done = Some(v.to_owned());
        } else if let Some(v) = after(line, "ESCAPEWATCH-VM: ") {
            let mut f = v.split_whitespace();
            if let (Some(test), Some(result)) = (f.next(), f.next()) {
                let secs = f.next().unwrap_or("").to_owned();
                c.results.insert(test.to_owned(), (result.to_owned(), secs));
            }
        }
    }
    c
}

/// An agent log line without its timestamp and level: `attached program=… hook=…`.
fn hook_summary(line: &str) -> String {
    match line.find("escapewatch") {
        Some(i) => line[i..].to_owned(),
        None => line.to_owned(),
    }
}

/// Write and print the results table; fail when any kernel failed any test or did not finish.
pub fn finish(outcomes: &[Outcome]) -> Result<()> {
    let consoles: Vec<Console> = outcomes
        .iter()
        .map(|o| parse(&fs::read_to_string(&o.log).unwrap_or_default()))
        .collect();
    let mut md = String::from("# escapewatch vm-test\n\n");
    md += "`host` is this machine's running kernel, tested natively (no VM: /boot holds no image of it).\n\n";
    md += "| test |";
    for o in outcomes {
        let _ = write!(md, " {} |", o.kernel.name);
    }
    md += "\n|---|";
    md += &"---|".repeat(outcomes.len());
    md += "\n";
    let mut names: Vec<&str> = Vec::new();
    for o in outcomes {
        for t in &o.tests {
            if !names.contains(&t.name.as_str()) {
                names.push(&t.name);
            }
        }
    }
    let mut failures = Vec::new();
    for name in &names {
        let _ = write!(md, "| {name} |");
        for (o, c) in outcomes.iter().zip(&consoles) {
            let cell = match c.results.get(*name) {
                Some((r, secs)) => format!("{r} ({secs})"),
                None if o.tests.iter().any(|t| t.name == *name) => "not run".to_owned(),
                None => "–".to_owned(),
            };
            if o.tests.iter().any(|t| t.name == *name) && !cell.starts_with("ok") {
                failures.push(format!("{}: {name} {cell}", o.kernel.name));
            }
            let _ = write!(md, " {cell} |");
        }
        md += "\n";
    }
    md += "| **time (boot → done)** |";
    for o in outcomes {
        let _ = write!(md, " {:.0} s |", o.elapsed.as_secs_f64());
    }
    md += "\n";
    md += "\nLeft out everywhere:\n\n";
    for (test, why) in LEFT_OUT {
        let _ = writeln!(md, "- `{test}`: {why}");
    }
    for (o, c) in outcomes.iter().zip(&consoles) {
        let _ = write!(
            md,
            "\n## {}\n\n- package: {}\n- uname -r: {}\n- LSMs: {}\n- ESCAPEWATCH_EXPECT_HOOKS: `{}`\n- ESCAPEWATCH_DISABLE_HOOKS: `{}`\n- finished: {}\n- console: {}\n",
            o.kernel.name,
            o.kernel.package.unwrap_or("(running kernel, native)"),
            c.uname.as_deref().unwrap_or("?"),
            c.lsm.as_deref().unwrap_or("?"),
            o.kernel.expect_hooks,
            o.kernel.disable_hooks,
            c.done.as_deref().unwrap_or("no (no final line)"),
            o.log.display(),
        );
        if let Some(p) = &o.problem {
            let _ = writeln!(md, "- problem: {p}");
        }
        if !c.served.is_empty() {
            md += "\n| rule alerted | served by |\n|---|---|\n";
            for (rule, hooks) in &c.served {
                let _ = writeln!(md, "| {rule} | {hooks} |");
            }
        }
        md += "\nHooks (agent log):\n\n```\n";
        for h in &c.hooks {
            md += h;
            md += "\n";
        }
        md += "```\n";
        if o.problem.is_some() || c.done.is_none() {
            failures.push(format!(
                "{}: {}",
                o.kernel.name,
                o.problem.as_deref().unwrap_or("the run did not finish")
            ));
        }
    }
    let path = vm_dir().join("results.md");
    fs::write(&path, &md)?;
    println!("{md}");
    println!("xtask vm-test: results in {}", path.display());
    if failures.is_empty() {
        return Ok(());
    }
    for o in outcomes {
        if failures
            .iter()
            .any(|f| f.starts_with(&format!("{}:", o.kernel.name)))
        {
            let text = fs::read_to_string(&o.log).unwrap_or_default();
            let sections = failed_sections(&text);
            if sections.is_empty() {
                let lines: Vec<&str> = text.lines().collect();
                println!(
                    "---- tail of {} ----\n{}",
                    o.log.display(),
                    lines[lines.len().saturating_sub(80)..].join("\n")
                );
            }
            for (test, lines) in sections {
                println!(
                    "---- {}: {test} (from {}) ----\n{}",
                    o.kernel.name,
                    o.log.display(),
                    lines[lines.len().saturating_sub(SECTION_LINES)..].join("\n")
                );
            }
        }
    }
    bail!("vm-test failed:\n  {}", failures.join("\n  "))
}

/// How much of a failed test's own output the failure report prints: its panic message, the
/// agent's last events and the test's last lines.
const SECTION_LINES: usize = 120;

/// Each failed test's lines, from its `ESCAPEWATCH-VM-RUN:` line to its result line (a failure
/// is then shown in CI's output whatever ran after it).
fn failed_sections(text: &str) -> Vec<(String, Vec<&str>)> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if after(line, "ESCAPEWATCH-VM-RUN: ").is_some() {
            current.clear();
        }
        current.push(line);
        if let Some(v) = after(line, "ESCAPEWATCH-VM: ") {
            let mut f = v.split_whitespace();
            if let (Some(test), Some("FAILED")) = (f.next(), f.next()) {
                out.push((test.to_owned(), std::mem::take(&mut current)));
            }
            current.clear();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_protocol_survives_kernel_noise_and_merges_served_hooks() {
        let text = "[   1.0] x ESCAPEWATCH-VM-UNAME: 6.1.0-56-cloud-amd64\r\n\
                    ESCAPEWATCH-VM-HOOK: 2026-11-23T04:01:30Z  INFO escapewatch::loader: attached program=\"p\"\n\
                    ESCAPEWATCH-VM: dirty_cow_race ok 17s\n\
                    [  99.1] audit: ESCAPEWATCH-VM: core_pattern_escape FAILED 25s\n\
                    ESCAPEWATCH-VM-SERVED: 6.1\truntime-binary-overwrite\tlsm/lsm_file_open\n\
                    ESCAPEWATCH-VM-SERVED: 6.1\truntime-binary-overwrite\ttracepoint/x,lsm/lsm_file_open\n\
                    ESCAPEWATCH-VM-DONE pass=1 fail=1\n";
        let c = parse(text);
        assert_eq!(c.uname.as_deref(), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(c.hooks, ["escapewatch::loader: attached program=\"p\""]);
        assert_eq!(c.results["dirty_cow_race"], ("ok".into(), "17s".into()));
        assert_eq!(c.results["core_pattern_escape"].0, "FAILED");
        assert_eq!(
            c.served["runtime-binary-overwrite"],
            "lsm/lsm_file_open,tracepoint/x"
        );
        assert_eq!(c.done.as_deref(), Some("pass=1 fail=1"));
    }

    #[test]
    fn a_failed_tests_own_lines_are_its_section() {
        let text = "ESCAPEWATCH-VM-RUN: a\nok output\nESCAPEWATCH-VM: a ok 1s\n\
                    ESCAPEWATCH-VM-RUN: b\npanicked at x\nESCAPEWATCH-VM-EVENT: {}\n\
                    ESCAPEWATCH-VM: b FAILED 2s\nESCAPEWATCH-VM-RUN: c\nlater\n\
                    ESCAPEWATCH-VM: c ok 1s\n";
        let s = failed_sections(text);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0, "b");
        assert_eq!(
            s[0].1,
            [
                "ESCAPEWATCH-VM-RUN: b",
                "panicked at x",
                "ESCAPEWATCH-VM-EVENT: {}",
                "ESCAPEWATCH-VM: b FAILED 2s"
            ]
        );
    }
}
