//! The process tree of a timeline: the selected processes and their ancestors.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ProcKey;
use crate::model::Event;

/// A process in the tree.
#[derive(Debug, Clone)]
pub struct TreeNode {
    pub pid: u32,
    pub start_time: u64,
    pub comm: String,
    /// Names the process had on the timeline, in order (each exec renames it).
    pub comms: Vec<String>,
    pub exe: String,
    pub args: Vec<String>,
    pub container: Option<String>,
    /// Part of the subject (not just an ancestor shown for context).
    pub in_subject: bool,
    /// Rules this process raised alerts of.
    pub alerts: Vec<String>,
    pub exit_code: Option<i64>,
    /// Events of this process on the timeline.
    pub events: u64,
    pub children: Vec<TreeNode>,
}

#[derive(Debug, Clone)]
struct Info {
    start_time: u64,
    ppid: u32,
    comm: String,
    exe: String,
    args: Vec<String>,
    container: Option<String>,
}

impl Info {
    fn of(e: &Event) -> Info {
        Info {
            start_time: e.process.start_time,
            ppid: e.process.ppid,
            comm: e.process.comm.clone(),
            exe: e.process.exe.clone(),
            args: e.process.args.clone(),
            container: e.container.as_ref().map(|c| c.id.clone()),
        }
    }
}

#[derive(Debug)]
struct Node {
    info: Info,
    parent: Option<ProcKey>,
    in_subject: bool,
    alerts: BTreeSet<String>,
    exit_code: Option<i64>,
    events: u64,
    comms: Vec<String>,
}

/// Ancestor chains longer than this are cut (a pid loop in a damaged log must not hang).
const MAX_DEPTH: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct ProcessTable {
    /// The latest process with each pid, per session: parents are found through it.
    latest: HashMap<(u64, u32), Info>,
    nodes: BTreeMap<ProcKey, Node>,
}

impl ProcessTable {
    /// Every event passes here, selected or not, so ancestors are known.
    pub fn observe(&mut self, session: u64, e: &Event) {
        let slot = self.latest.entry((session, e.process.pid));
        slot.and_modify(|i| {
            if i.start_time != e.process.start_time || e.kind_name() == "process_exec" {
                *i = Info::of(e);
            }
        })
        .or_insert_with(|| Info::of(e));
    }

    fn parent_key(&self, session: u64, ppid: u32) -> Option<ProcKey> {
        self.latest
            .get(&(session, ppid))
            .map(|i| (session, ppid, i.start_time))
    }

    /// Is the process of `e` one of `roots` or a descendant of one?
    pub fn descends_from(&self, session: u64, e: &Event, roots: &BTreeSet<ProcKey>) -> bool {
        let mut key = (session, e.process.pid, e.process.start_time);
        let mut ppid = e.process.ppid;
        for _ in 0..MAX_DEPTH {
            if roots.contains(&key) {
                return true;
            }
            if ppid == 0 || ppid == key.1 {
                return false;
            }
            match self.latest.get(&(session, ppid)) {
                Some(i) => {
                    key = (session, ppid, i.start_time);
                    ppid = i.ppid;
                }
                None => return false,
            }
        }
        false
    }

    /// `e` is on the timeline: its process joins the tree, with its ancestors as context.
    pub fn select(&mut self, session: u64, e: &Event) {
        let key = (session, e.process.pid, e.process.start_time);
        let parent = self.parent_key(session, e.process.ppid);
        let node = self.nodes.entry(key).or_insert_with(|| Node {
            info: Info::of(e),
            parent,
            in_subject: true,
            alerts: BTreeSet::new(),
            exit_code: None,
            events: 0,
            comms: Vec::new(),
        });
        if node.comms.last() != Some(&e.process.comm) {
            node.comms.push(e.process.comm.clone());
        }
        node.in_subject = true;
        node.events += 1;
        if e.kind_name() == "process_exec" {
            node.info = Info::of(e);
        }
        if e.kind_name() == "process_exit" {
            node.exit_code = serde_json::to_value(&e.data)
                .ok()
                .and_then(|v| v.get("exit_code").and_then(serde_json::Value::as_i64));
        }
        // Ancestors, as far as the log knows them.
        let mut next = parent;
        for _ in 0..MAX_DEPTH {
            let Some(k) = next else { break };
            if self.nodes.contains_key(&k) {
                break;
            }
            let Some(info) = self.latest.get(&(k.0, k.1)).cloned() else {
                break;
            };
            let up = if info.ppid == k.1 {
                None
            } else {
                self.parent_key(session, info.ppid)
            };
            self.nodes.insert(
                k,
                Node {
                    info,
                    parent: up,
                    in_subject: false,
                    alerts: BTreeSet::new(),
                    exit_code: None,
                    events: 0,
                    comms: Vec::new(),
                },
            );
            next = up;
        }
    }

    pub fn mark_alert(&mut self, process: ProcKey, rule: &str) {
        if let Some(n) = self.nodes.get_mut(&process) {
            n.alerts.insert(rule.to_owned());
        }
    }

    pub fn into_tree(self) -> Vec<TreeNode> {
        let mut children: BTreeMap<ProcKey, Vec<ProcKey>> = BTreeMap::new();
        let mut roots = Vec::new();
        for (k, n) in &self.nodes {
            match n.parent {
                Some(p) if p != *k && self.nodes.contains_key(&p) => {
                    children.entry(p).or_default().push(*k);
                }
                _ => roots.push(*k),
            }
        }
        let by_start = |v: &mut Vec<ProcKey>, nodes: &BTreeMap<ProcKey, Node>| {
            v.sort_by_key(|k| (k.0, nodes[k].info.start_time, k.1));
        };
        by_start(&mut roots, &self.nodes);
        fn build(
            k: ProcKey,
            nodes: &BTreeMap<ProcKey, Node>,
            children: &BTreeMap<ProcKey, Vec<ProcKey>>,
            depth: usize,
        ) -> TreeNode {
            let n = &nodes[&k];
            let mut kids: Vec<ProcKey> = children.get(&k).cloned().unwrap_or_default();
            kids.sort_by_key(|c| (nodes[c].info.start_time, c.1));
            TreeNode {
                pid: k.1,
                start_time: n.info.start_time,
                comm: n.info.comm.clone(),
                comms: if n.comms.is_empty() {
                    vec![n.info.comm.clone()]
                } else {
                    n.comms.clone()
                },
                exe: n.info.exe.clone(),
                args: n.info.args.clone(),
                container: n.info.container.clone(),
                in_subject: n.in_subject,
                alerts: n.alerts.iter().cloned().collect(),
                exit_code: n.exit_code,
                events: n.events,
                children: if depth >= MAX_DEPTH {
                    Vec::new()
                } else {
                    kids.into_iter()
                        .map(|c| build(c, nodes, children, depth + 1))
                        .collect()
                },
            }
        }
        roots
            .into_iter()
            .map(|r| build(r, &self.nodes, &children, 0))
            .collect()
    }
}
