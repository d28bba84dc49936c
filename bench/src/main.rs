//! `ewbench`: the load generators and microbenchmarks `cargo xtask bench` runs with the agent
//! off and on. Each subcommand prints machine-readable lines (`key\tvalue`) on stdout.
//!
//! ```text
//! ewbench micro [--scale F] [--only OP]          ns/op of every hooked path (host process)
//! ewbench setns-load --rate R --secs S [--threads T]
//!                                                setns(own uts ns) at R/s for S s
//! ewbench pvw-load --rate R --secs S --cgroup D  process_vm_writev(self, no iovecs) at R/s
//!                                                for S s, from a container-shaped process
//! ewbench latency --alert-log P --cgroup D --reps N [--gap-us U]
//!                                                syscall-to-alert latency, one µs figure a line
//! ewbench procs --count N                        N idle children until stdin closes
//! ```

mod latency;
mod load;
mod micro;

use anyhow::{Context as _, Result, bail};

/// `--name value` from the arguments, parsed.
fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>> {
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    let v = args
        .get(i + 1)
        .with_context(|| format!("{name} needs a value"))?;
    v.parse()
        .map(Some)
        .map_err(|_| anyhow::anyhow!("bad value {v:?} for {name}"))
}

fn required<T: std::str::FromStr>(args: &[String], name: &str) -> Result<T> {
    flag(args, name)?.with_context(|| format!("{name} is required"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        bail!("usage: ewbench micro|setns-load|pvw-load|latency|procs …");
    };
    match cmd.as_str() {
        "micro" => micro::run(
            flag(&args, "--scale")?.unwrap_or(1.0),
            flag::<String>(&args, "--only")?.as_deref(),
        ),
        "setns-load" => load::setns_load(
            required(&args, "--rate")?,
            required(&args, "--secs")?,
            flag(&args, "--threads")?.unwrap_or(1),
        ),
        "latency" => latency::run(
            &required::<String>(&args, "--alert-log")?,
            &required::<String>(&args, "--cgroup")?,
            required(&args, "--reps")?,
            flag(&args, "--gap-us")?.unwrap_or(5_000),
        ),
        "pvw-load" => load::pvw_load(
            required(&args, "--rate")?,
            required(&args, "--secs")?,
            &required::<String>(&args, "--cgroup")?,
        ),
        "procs" => load::procs(required(&args, "--count")?),
        other => bail!("unknown subcommand {other:?}"),
    }
}

/// CLOCK_MONOTONIC in ns.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU seconds (user + system) this process has used, every thread.
pub fn self_cpu_secs() -> f64 {
    // SAFETY: rusage is plain old data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Fail with errno when a libc call returned -1.
pub fn check(rc: libc::c_long, what: &str) -> Result<libc::c_long> {
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| what.to_owned());
    }
    Ok(rc)
}
