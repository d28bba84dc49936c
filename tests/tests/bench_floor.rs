//! `escapewatch bench-floor`, the raw-syscall design floor `cargo xtask bench` measures: it
//! attaches exactly its two raw tracepoints (sys_enter and sys_exit) and nothing else, holds
//! them until SIGTERM, then exits 0 and leaves nothing attached.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use escapewatch_integration::agent::{agent_bin, require_root};
use serde_json::Value;

/// `bpftool link show -j`: (program id, tracepoint) of every raw-tracepoint link.
fn raw_tracepoint_links() -> Vec<(u64, String)> {
    let out = Command::new("bpftool")
        .args(["link", "show", "-j"])
        .output()
        .expect("bpftool (apt package bpftool)");
    assert!(out.status.success(), "bpftool link show failed");
    let links: Vec<Value> = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    links
        .iter()
        .filter(|l| l["type"] == "raw_tracepoint")
        .map(|l| {
            (
                l["prog_id"].as_u64().expect("prog_id"),
                l["tp_name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Program ids and names of the programs `bpftool prog show -j` lists.
fn program_names() -> Vec<(u64, String)> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .expect("bpftool");
    assert!(out.status.success(), "bpftool prog show failed");
    let progs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    progs
        .iter()
        .map(|p| {
            (
                p["id"].as_u64().expect("id"),
                p["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn floor_links() -> Vec<(String, String)> {
    let names = program_names();
    let mut found: Vec<(String, String)> = raw_tracepoint_links()
        .into_iter()
        .filter_map(|(id, tp)| {
            let name = names.iter().find(|(i, _)| *i == id)?.1.clone();
            name.starts_with("floor_").then_some((name, tp))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn bench_floor_attaches_its_two_raw_tracepoints_until_sigterm() {
    require_root();
    let mut child = Command::new(agent_bin())
        .arg("bench-floor")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start escapewatch bench-floor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "bench-floor did not say ready");
    assert_eq!(
        floor_links(),
        vec![
            ("floor_sys_enter".to_owned(), "sys_enter".to_owned()),
            ("floor_sys_exit".to_owned(), "sys_exit".to_owned()),
        ],
        "the design floor is two raw tracepoints, one on sys_enter, one on sys_exit"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "bench-floor exited with {status}");
    assert!(
        floor_links().is_empty(),
        "the floor's programs stay attached after exit"
    );
}
