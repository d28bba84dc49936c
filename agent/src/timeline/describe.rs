//! One line of words for any event, from its kind name and its JSON: new event kinds get a
//! generic `key=value` description without a change here; a few kinds read better by hand.

use serde_json::Value;

use crate::model::Event;

/// Longest value shown in the generic description.
const MAX_VALUE_CHARS: usize = 160;

pub fn describe(e: &Event) -> String {
    let data = serde_json::to_value(&e.data).unwrap_or(Value::Null);
    let special = match e.kind_name() {
        "process_exec" => Some(exec(e, &data)),
        "process_fork" => data
            .get("creator_pid")
            .map(|c| format!("forked by pid {c}")),
        "process_exit" => data
            .get("exit_code")
            .and_then(Value::as_i64)
            .map(exit_status),
        "namespace" => namespace(&data),
        _ => None,
    };
    special.unwrap_or_else(|| generic(&data))
}

fn exec(e: &Event, data: &Value) -> String {
    let filename = data.get("filename").and_then(Value::as_str).unwrap_or("?");
    let mut out = filename.to_owned();
    // args[0] is usually the name again; the rest is what matters.
    let args: Vec<&str> = e.process.args.iter().skip(1).map(String::as_str).collect();
    if !args.is_empty() {
        out.push(' ');
        out.push_str(&args.join(" "));
    }
    if data.get("truncated").and_then(Value::as_bool) == Some(true) {
        out.push_str(" …(arguments truncated)");
    }
    out
}

/// Kernel exit code: low 7 bits a signal, else the status in the second byte.
pub fn exit_status(code: i64) -> String {
    let signal = code & 0x7f;
    if signal != 0 {
        format!("killed by signal {signal}")
    } else {
        format!("exited with status {}", (code >> 8) & 0xff)
    }
}

fn namespace(data: &Value) -> Option<String> {
    let syscall = data.get("syscall")?.as_str()?;
    let ret = data.get("ret").and_then(Value::as_i64).unwrap_or(0);
    let types: Vec<&str> = data
        .get("flag_types")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = format!("{syscall}({})", types.join("|"));
    if let Some(fd) = data.get("fd").and_then(Value::as_i64) {
        out.push_str(&format!(" fd={fd}"));
    }
    if ret < 0 {
        out.push_str(&format!(" failed: errno {}", -ret));
    } else if syscall == "clone" {
        out.push_str(&format!(" → child {ret}"));
    }
    for j in data
        .get("joined")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let t = j.get("type").and_then(Value::as_str).unwrap_or("?");
        let inode = j.get("inode").map(Value::to_string).unwrap_or_default();
        let owner = match j.get("owner") {
            Some(o) => match o.get("kind").and_then(Value::as_str) {
                Some("container") => format!(
                    "container {}",
                    o.get("id").and_then(Value::as_str).unwrap_or("?")
                ),
                Some(k) => k.to_owned(),
                None => "?".into(),
            },
            None => "?".into(),
        };
        out.push_str(&format!("; joined {t} {inode} ({owner})"));
    }
    Some(out)
}

/// `key=value` for every field but the kind; nested values as compact JSON, long ones cut.
fn generic(data: &Value) -> String {
    let Some(obj) = data.as_object() else {
        return cut(&data.to_string());
    };
    obj.iter()
        .filter(|(k, _)| k.as_str() != "kind")
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}={}", cut(&v))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_VALUE_CHARS).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_description_names_every_field() {
        let v =
            serde_json::json!({"kind": "new_kind", "path": "/etc/x", "n": 3, "deep": {"a": [1]}});
        assert_eq!(generic(&v), "deep={\"a\":[1]} n=3 path=/etc/x");
        assert!(generic(&serde_json::json!({"s": "x".repeat(500)})).ends_with('…'));
        assert_eq!(exit_status(256), "exited with status 1");
        assert_eq!(exit_status(9), "killed by signal 9");
    }
}
