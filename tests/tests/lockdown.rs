//! Issue K, what kernel lockdown guards, asked for from real runc containers: port I/O rights
//! (iopl, ioperm), kexec (kexec_load, kexec_file_load, the 32-bit entry too), an MSR device
//! made with mknod under a name that says nothing, a PCI device's configuration space opened
//! for writing; a container without the capabilities trying the same (EPERM: the attempt is
//! the alert); and the benign look-alikes (lspci-style reads, the CPUID device, the host
//! itself) giving zero alerts. Every call is harmless (see the primitives' lockdown module):
//! no port is touched, no kernel loaded, no configuration byte written. Run through `cargo
//! xtask test` (root; agents never overlap).

use std::{fs, path::Path, process::Command};

use escapewatch_integration::{
    agent::{Agent, work_dir},
    escape::{WAIT, finish, privileged, scenario, scenario_by_another_entry, sh},
    runc::Bundle,
    scenario::{check_alert, primitives_bin, with_char_device},
};
use serde_json::{Value, json};

const HARDWARE: &str = "raw-hardware-access";
const KEXEC: &str = "kexec-load";

/// The errno a kernel gives a privileged caller of iopl/ioperm: none (0) where it has
/// CONFIG_X86_IOPL_IOPERM, else ENOSYS. Read from the host's own call (iopl(0) changes
/// nothing).
fn ioport_ret() -> i64 {
    // SAFETY: iopl(0) gives up rights this test process does not have.
    let rc = unsafe { libc::syscall(libc::SYS_iopl, 0 as libc::c_long) };
    if rc == 0 {
        0
    } else {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// The errno of a call on a kernel without it.
const ENOSYS: i64 = 38;
const EPERM: i64 = 1;

/// Whether this kernel has kexec (the call is not ENOSYS): probed with the kernel's
/// kexec_load on the host with an undefined flag and too many segments (EINVAL, nothing
/// loaded).
fn has_kexec() -> bool {
    // SAFETY: the kernel rejects the flag and the count before reading anything.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            0 as libc::c_ulong,
            1000 as libc::c_ulong,
            std::ptr::null::<u8>(),
            0x8000 as libc::c_ulong,
        )
    };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(ENOSYS as i32)
}

/// A container without CAP_SYS_RAWIO and CAP_SYS_BOOT (runc's default capabilities): the
/// kernel refuses before its lockdown check.
fn unprivileged(b: Bundle) -> Bundle {
    let mut b = b;
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        if let Some(list) = b.config_mut()["process"]["capabilities"][set].as_array_mut() {
            list.retain(|c| c != "CAP_SYS_RAWIO" && c != "CAP_SYS_BOOT");
        }
    }
    b
}

/// The device cgroup lets the container open char MAJOR:MINOR (no node is made: the
/// container makes its own with mknod).
fn allow_char(mut b: Bundle, major: u32, minor: u32) -> Bundle {
    let allow =
        json!({ "allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm" });
    let linux = &mut b.config_mut()["linux"];
    match linux["resources"]["devices"].as_array_mut() {
        Some(list) => list.push(allow),
        None => linux["resources"]["devices"] = json!([allow]),
    }
    b
}

/// /sys mounted read-write, as a privileged Docker container has it (runc's default spec
/// mounts it read-only).
fn writable_sys(mut b: Bundle) -> Bundle {
    if let Some(mounts) = b.config_mut()["mounts"].as_array_mut() {
        for m in mounts.iter_mut().filter(|m| m["destination"] == "/sys") {
            if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| o != "ro");
            }
        }
    }
    b
}

/// The first PCI device of the host, by its sysfs name.
fn first_pci_device() -> String {
    let mut names: Vec<String> = fs::read_dir("/sys/bus/pci/devices")
        .expect("/sys/bus/pci/devices")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().next().expect("a PCI device")
}

fn assert_comm(alert: &Value) {
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
}

/// A privileged container asks for I/O privilege level 3 and for port 0x80: granted on a
/// kernel with CONFIG_X86_IOPL_IOPERM (and given back at once), ENOSYS elsewhere. Both calls
/// alert, each with its arguments.
#[test]
fn iopl_and_ioperm_from_a_privileged_container() {
    let want = ioport_ret();
    let (agent, alert, c) = scenario(
        "ioport",
        HARDWARE,
        |b| b,
        |c| sh(c, "primitives iopl 3; primitives ioperm 80 1"),
    );
    let cgroup = c.cgroup_path().unwrap();
    assert_eq!(alert["details"]["syscall"], "iopl", "{alert:#}");
    assert_eq!(alert["details"]["level"], 3, "{alert:#}");
    assert_eq!(alert["details"]["ret"], want, "{alert:#}");
    assert_comm(&alert);
    let verb = if want == 0 { " got " } else { " tried to get " };
    assert!(
        alert["summary"].as_str().unwrap().contains(verb),
        "{alert:#}"
    );
    let ioperm = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == HARDWARE && a["details"]["syscall"] == "ioperm"
    });
    check_alert(&ioperm, HARDWARE, &cgroup, "unknown");
    assert_eq!(ioperm["details"]["from"], 0x80, "{ioperm:#}");
    assert_eq!(ioperm["details"]["num"], 1, "{ioperm:#}");
    assert_eq!(ioperm["details"]["ret"], want, "{ioperm:#}");
    drop(c);
    finish(agent, "ioport");
}

/// Without CAP_SYS_RAWIO the kernel refuses (EPERM; ENOSYS without the syscall): the
/// attempt is the alert.
#[test]
fn iopl_refused_in_an_unprivileged_container_is_an_attempt() {
    let (agent, alert, c) = scenario("ioport-refused", HARDWARE, unprivileged, |c| {
        sh(c, "primitives iopl 3")
    });
    let want = if ioport_ret() == -ENOSYS {
        -ENOSYS
    } else {
        -EPERM
    };
    assert_eq!(alert["details"]["syscall"], "iopl", "{alert:#}");
    assert_eq!(alert["details"]["ret"], want, "{alert:#}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .contains("tried to get I/O privilege level 3"),
        "{alert:#}"
    );
    drop(c);
    finish(agent, "ioport-refused");
}

/// kexec_load and kexec_file_load with arguments the kernel rejects after its permission
/// checks (EINVAL in a container with CAP_SYS_BOOT, ENOSYS without kexec): two critical
/// alerts.
#[test]
fn kexec_from_a_privileged_container() {
    let (agent, alert, c) = scenario(
        "kexec",
        KEXEC,
        |b| b.add_capabilities(&["CAP_SYS_BOOT"]),
        |c| sh(c, "primitives kexec-load; primitives kexec-file-load"),
    );
    let cgroup = c.cgroup_path().unwrap();
    assert_eq!(alert["severity"], "critical", "{alert:#}");
    assert_eq!(alert["details"]["syscall"], "kexec_load", "{alert:#}");
    assert_eq!(alert["details"]["nr_segments"], 1000, "{alert:#}");
    assert_eq!(alert["details"]["flags"], "0x8000", "{alert:#}");
    let want = if has_kexec() { -22 } else { -ENOSYS };
    assert_eq!(alert["details"]["ret"], want, "{alert:#}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .contains("tried to load a kernel")
    );
    assert_comm(&alert);
    let file = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == KEXEC && a["details"]["syscall"] == "kexec_file_load"
    });
    check_alert(&file, KEXEC, &cgroup, "unknown");
    assert_eq!(file["details"]["kernel_fd"], -1, "{file:#}");
    assert_eq!(file["details"]["initrd_fd"], -1, "{file:#}");
    assert!(file["details"]["ret"].as_i64().unwrap() < 0, "{file:#}");
    drop(c);
    finish(agent, "kexec");
}

/// Without CAP_SYS_BOOT: EPERM (ENOSYS without kexec), alerted as an attempt.
#[test]
fn kexec_refused_in_an_unprivileged_container_is_an_attempt() {
    let (agent, alert, c) = scenario("kexec-refused", KEXEC, unprivileged, |c| {
        sh(c, "primitives kexec-load")
    });
    let want = if has_kexec() { -EPERM } else { -ENOSYS };
    assert_eq!(alert["details"]["ret"], want, "{alert:#}");
    assert!(alert["summary"].as_str().unwrap().contains("tried to load"));
    drop(c);
    finish(agent, "kexec-refused");
}

/// The 32-bit entry (`int 0x80`, i386 kexec_load = 283), which the per-syscall tracepoints
/// never report: decoded by the sys_enter dispatcher.
#[test]
fn kexec_load_through_int80_is_alerted() {
    let (agent, alert, c) = scenario_by_another_entry(
        "compat-kexec",
        KEXEC,
        |b| b,
        |c| sh(c, "primitives int80 283 0 1000 0 32768"),
    );
    assert_eq!(alert["details"]["syscall"], "kexec_load", "{alert:#}");
    assert_eq!(alert["details"]["nr_segments"], 1000, "{alert:#}");
    assert_eq!(alert["details"]["flags"], "0x8000", "{alert:#}");
    let hooks = escapewatch_integration::escape::cited_hooks(&agent, &alert);
    assert!(hooks.iter().any(|h| h == "tp_btf/sys_exit"), "{hooks:?}");
    drop(c);
    finish(agent, "compat-kexec");
}

/// A privileged container makes an MSR node (char 202:0) with mknod as /tmp/innocent and
/// opens it read-only. With the msr driver (modprobe'd here if the kernel has it) the open
/// succeeds; without it the kernel says ENXIO. Either way the device number, not the name,
/// makes the alert.
#[test]
fn an_msr_node_under_another_name_is_alerted() {
    let _ = Command::new("modprobe").arg("msr").status();
    let driver = Path::new("/dev/cpu/0/msr").exists();
    let (agent, alert, c) = scenario(
        "msr",
        HARDWARE,
        |b| allow_char(b.add_capabilities(&["CAP_MKNOD"]), 202, 0),
        |c| {
            let out = sh(
                c,
                "mknod /tmp/innocent c 202 0 && primitives open /tmp/innocent r",
            );
            eprintln!("msr: {out}");
            out
        },
    );
    let d = &alert["details"];
    assert_eq!(d["device"], "msr", "{alert:#}");
    assert_eq!(d["cpu"], 0, "{alert:#}");
    assert_eq!(d["rdev"], "202:0", "{alert:#}");
    assert_eq!(d["write"], false, "{alert:#}");
    assert_eq!(d["path"], "/tmp/innocent", "{alert:#}");
    if driver {
        assert_eq!(d["ret"].as_i64().map(|r| r >= 0), Some(true), "{alert:#}");
    } else {
        assert_eq!(d["ret"], -6, "ENXIO without the msr driver: {alert:#}");
        assert!(alert["summary"].as_str().unwrap().contains("tried to open"));
    }
    assert_comm(&alert);
    drop(c);
    finish(agent, "msr");
}

/// A privileged container (with /sys writable, as Docker's --privileged has it) opens a PCI
/// device's configuration space read-write, writing nothing.
#[test]
fn a_pci_config_space_write_open_is_alerted() {
    let dev = first_pci_device();
    let path = format!("/sys/bus/pci/devices/{dev}/config");
    let (agent, alert, c) = scenario("pci-config", HARDWARE, writable_sys, |c| {
        sh(c, &format!("primitives open {path} rw"))
    });
    let d = &alert["details"];
    assert_eq!(d["device"], "pci_config", "{alert:#}");
    assert_eq!(d["pci_device"], dev.as_str(), "{alert:#}");
    assert_eq!(d["write"], true, "{alert:#}");
    assert_eq!(d["fs"], "sysfs", "{alert:#}");
    assert_eq!(d["file"]["name"], "config", "{alert:#}");
    assert_eq!(d["path"], path.as_str(), "{alert:#}");
    assert!(d["ret"].as_i64().unwrap() >= 0, "{alert:#}");
    assert_comm(&alert);
    drop(c);
    finish(agent, "pci-config");
}

/// What lspci does (vendor, device, resource lists, configuration space read) and reads of
/// the CPUID device, in a privileged container, and the host itself asking for port I/O,
/// kexec and a configuration write-open: no alert of either rule. The agent saw the reads
/// (the configuration-space opens are reported), so the test can fail.
#[test]
fn lspci_cpuid_and_the_host_give_zero_alerts() {
    let dir = work_dir("lockdown-benign");
    let mut agent = Agent::start(&dir);
    let c = privileged("lockdown-benign", |b| {
        let b = writable_sys(b);
        if Path::new("/dev/cpu/0/cpuid").exists() {
            with_char_device(b, "/dev/cpuid0", 203, 0)
        } else {
            b
        }
    });
    let out = sh(
        &c,
        "for d in /sys/bus/pci/devices/*; do cat $d/vendor $d/device $d/class $d/resource >/dev/null; \
         head -c 64 $d/config >/dev/null; done; \
         for f in /proc/bus/pci/*/*; do head -c 64 $f >/dev/null; done; \
         [ -e /dev/cpuid0 ] && dd if=/dev/cpuid0 of=/dev/null bs=16 count=1 2>&1; \
         primitives iopl 0; echo done",
    );
    assert!(out.contains("done"), "{out}");
    // The host: the same primitives, run as a host process.
    let bin = primitives_bin();
    let config = format!("/sys/bus/pci/devices/{}/config", first_pci_device());
    for args in [
        vec!["iopl", "3"],
        vec!["kexec-load"],
        vec!["open", config.as_str(), "rw"],
    ] {
        let status = Command::new(&bin)
            .args(&args)
            .status()
            .expect("primitives on the host");
        assert!(status.success(), "{args:?}");
    }
    let cgroup = c.cgroup_path().unwrap();
    agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "file_open"
            && e["data"]["file"]["name"] == "config"
            && e["data"]["classes"]
                .as_array()
                .is_some_and(|cl| cl.contains(&json!("hardware")))
            && e["container"]["id"] == cgroup.as_str()
    });
    drop(c);
    agent.stop();
    let hits: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == HARDWARE || a["rule"] == KEXEC)
        .collect();
    assert_eq!(hits, Vec::<Value>::new());
}

/// Where the kernel runs BPF LSM programs (the QEMU guests), a privileged container's iopl(3)
/// and kexec_load reach the kernel's lockdown check, named by the kernel's own reason
/// (decoded from its BTF): `ioport`, `kexec`. Where it does not (this host), the agent says
/// lsm_locked_down did not attach and the syscall programs alone serve the class.
#[test]
fn the_kernel_lockdown_check_names_the_reason() {
    let dir = work_dir("lockdown-reach");
    let mut agent = Agent::start(&dir);
    if !agent.attached("lsm_locked_down") {
        agent.stop();
        let out = Command::new(escapewatch_integration::agent::agent_bin())
            .arg("rules")
            .output()
            .expect("escapewatch rules");
        let text = String::from_utf8_lossy(&out.stdout);
        let section = text
            .split("\n\n")
            .find(|s| s.starts_with("kernel-lockdown-reach"))
            .expect("rule listed");
        eprintln!("lsm_locked_down not attached here:\n{section}");
        return;
    }
    let c = privileged("lockdown-reach", |b| b.add_capabilities(&["CAP_SYS_BOOT"]));
    let cgroup = c.cgroup_path().unwrap();
    let out = sh(&c, "primitives iopl 3; primitives kexec-load");
    eprintln!("lockdown-reach: {out}");
    for reason in ["ioport", "kexec"] {
        let alert = agent.wait_for_alert(WAIT, |a| {
            a["rule"] == "kernel-lockdown-reach" && a["details"]["reason"] == reason
        });
        check_alert(&alert, "kernel-lockdown-reach", &cgroup, "unknown");
        escapewatch_integration::escape::check_hooks(&agent, &alert);
        assert_comm(&alert);
        assert!(
            alert["details"]["reason_value"].as_u64().is_some(),
            "{alert:#}"
        );
        let upper = format!("LOCKDOWN_{}", reason.to_ascii_uppercase());
        assert!(
            alert["summary"].as_str().unwrap().contains(&upper),
            "{alert:#}"
        );
        let hooks = escapewatch_integration::escape::cited_hooks(&agent, &alert);
        assert!(
            hooks.iter().any(|h| h == "lsm/lsm_locked_down"),
            "{hooks:?}"
        );
    }
    drop(c);
    finish(agent, "lockdown-reach");
}
