use clap::ValueEnum as _;

use super::*;

fn opts(disabled: Vec<PrecisionHook>) -> LoadOptions {
    LoadOptions {
        watched_ports: Vec::new(),
        rings: RingBuffers::default(),
        btf: None,
        host_mnt_ns: 0,
        cgroup2_root: None,
        disabled,
    }
}

fn spec(pick: impl Fn(&ProgramSpec) -> bool) -> &'static ProgramSpec {
    PROGRAMS.iter().find(|s| pick(s)).expect("such a program")
}

/// A disabled program is not a failure because its fallback serves: every program of a
/// type that can be disabled has one.
#[test]
fn disable_able_programs_have_fallbacks() {
    for s in PROGRAMS {
        if PrecisionHook::value_variants()
            .iter()
            .any(|h| h.kind_name() == s.hook.kind_name())
        {
            assert!(!s.fallback.is_empty(), "{} has no fallback", s.name);
        }
    }
}

#[test]
fn states_of_programs() {
    let precise = spec(|s| !s.fallback.is_empty());
    let plain = spec(|s| s.fallback.is_empty() && matches!(s.hook, Hook::RawTracepoint { .. }));
    let refused = || Err(AttachError::NoKprobes);

    let disabled = *PrecisionHook::value_variants()
        .iter()
        .find(|h| h.kind_name() == precise.hook.kind_name())
        .unwrap();
    let state = program_state(precise, &[], &opts(vec![disabled]), || Ok(()));
    assert!(matches!(state, ProgramState::Disabled), "{state:?}");
    assert_eq!(
        state.why_not().as_deref(),
        Some("disabled by configuration (hooks.disable, --disable-hooks)")
    );

    let state = program_state(precise, &[], &opts(vec![]), refused);
    assert!(matches!(state, ProgramState::Absent { .. }), "{state:?}");
    let state = program_state(plain, &[], &opts(vec![]), refused);
    assert!(matches!(state, ProgramState::Failed { .. }), "{state:?}");
    let state = program_state(plain, &[], &opts(vec![]), || Ok(()));
    assert!(matches!(state, ProgramState::Attached) && state.why_not().is_none());
}

#[test]
fn alternatives_stand_by_behind_the_one_attached() {
    let (i, first) = PROGRAMS
        .iter()
        .enumerate()
        .find(|(i, s)| PROGRAMS[i + 1..].iter().any(|o| o.group == s.group))
        .expect("a group with alternatives");
    let (j, second) = PROGRAMS
        .iter()
        .enumerate()
        .skip(i + 1)
        .find(|(_, o)| o.group == first.group)
        .unwrap();
    let before: Vec<Attachment> = PROGRAMS[..j]
        .iter()
        .map(|s| Attachment {
            program: s.name,
            group: s.group,
            hook: s.hook,
            state: if s.name == first.name {
                ProgramState::Attached
            } else {
                ProgramState::Failed {
                    error: AttachError::NoCgroup2,
                }
            },
        })
        .collect();
    let state = program_state(second, &before, &opts(vec![]), || {
        panic!("a standby program is not attached")
    });
    assert!(
        matches!(state, ProgramState::Standby { served_by } if served_by == first.name),
        "{state:?}"
    );
    assert!(state.why_not().is_none());
}

/// The messages kept their wording: the step, then the kernel's or the OS's reason.
#[test]
fn attach_errors_read_as_one_line() {
    let open = AttachError::OpenCgroup2 {
        path: "/sys/fs/cgroup".into(),
        source: std::io::Error::from_raw_os_error(libc::ENOENT),
    };
    assert_eq!(
        error_chain(&open),
        "cannot open cgroup2 root /sys/fs/cgroup: No such file or directory (os error 2)"
    );
    let lsm = AttachError::from(LsmError::Inactive {
        active: "lockdown,capability,apparmor".into(),
    });
    assert_eq!(
        error_chain(&lsm),
        "BPF LSM is not active (active LSMs: lockdown,capability,apparmor); boot with lsm=...,bpf to enable it"
    );
    assert_eq!(
        error_chain(&AttachError::MissingProgram { program: "x" }),
        "program x is missing from the eBPF object"
    );
}

/// Without loadable modules the module_request program is absent, not failed, and says why.
#[test]
fn module_request_is_absent_without_modules() {
    let module = spec(|s| s.name == "module_request");
    let state = program_state(module, &[], &opts(vec![]), || {
        Err(AttachError::NoModules {
            tracepoint: "module_request",
        })
    });
    assert!(matches!(state, ProgramState::Absent { .. }), "{state:?}");
    let why = state.why_not().unwrap();
    assert!(why.contains("CONFIG_MODULES off"), "{why}");
}
