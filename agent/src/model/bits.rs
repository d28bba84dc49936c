//! Flag words kept as integers in the model and written as the strings the event log has
//! always had: hex (`"0x84000"`) for mount, clone, vm and fault flags and capabilities, octal
//! (`"0o2000001"`) for open flags, as the kernel headers write them.

use std::fmt;

use serde::{
    Deserializer, Serializer,
    de::{self, Visitor},
};

struct Number {
    prefix: &'static str,
    radix: u32,
}
impl Visitor<'_> for Number {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a string {}… (base {})", self.prefix, self.radix)
    }
    // Borrowed or transient, the digits are parsed in place: no allocation per field.
    fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
        let digits = s
            .strip_prefix(self.prefix)
            .ok_or_else(|| E::custom(format!("{s:?} does not start with {}", self.prefix)))?;
        u64::from_str_radix(digits, self.radix)
            .map_err(|e| E::custom(format!("{s:?} is not a base-{} number: {e}", self.radix)))
    }
}

fn parse<'de, D: Deserializer<'de>>(
    d: D,
    prefix: &'static str,
    radix: u32,
) -> Result<u64, D::Error> {
    d.deserialize_str(Number { prefix, radix })
}

/// `#[serde(with = "bits::hex")]`: a `u64` written as `0x…`.
pub mod hex {
    use super::*;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:#x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        parse(d, "0x", 16)
    }
}

/// `#[serde(with = "bits::octal")]`: a `u64` written as `0o…`.
pub mod octal {
    use super::*;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:#o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        parse(d, "0o", 8)
    }
}

/// `#[serde(with = "bits::hex_or_empty")]`: an `Option<u64>` written as `0x…`, or `""` when
/// unknown.
pub mod hex_or_empty {
    use super::*;

    #[allow(clippy::ref_option)] // serde's `with` passes the field by reference
    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => hex::serialize(v, s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        struct Empty;
        impl Visitor<'_> for Empty {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string 0x… or \"\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<u64>, E> {
                if s.is_empty() {
                    return Ok(None);
                }
                Number {
                    prefix: "0x",
                    radix: 16,
                }
                .visit_str(s)
                .map(Some)
            }
        }
        d.deserialize_str(Empty)
    }
}

/// Capability names by bit number (`include/uapi/linux/capability.h`, through 6.18).
pub const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The names of the capabilities in `mask`, lowest bit first (`CAP_63` for a bit no kernel
/// names yet).
pub fn cap_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| mask & (1 << bit) != 0)
        .map(|bit| {
            CAP_NAMES
                .get(bit)
                .map_or_else(|| format!("CAP_{bit}"), |n| (*n).to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[test]
    fn capability_names_by_bit() {
        assert_eq!(
            super::cap_names((1 << 16) | (1 << 21) | (1 << 40) | (1 << 50)),
            [
                "CAP_SYS_MODULE",
                "CAP_SYS_ADMIN",
                "CAP_CHECKPOINT_RESTORE",
                "CAP_50"
            ]
        );
        assert!(super::cap_names(0).is_empty());
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Flags {
        #[serde(with = "super::hex")]
        h: u64,
        #[serde(with = "super::octal")]
        o: u64,
    }

    #[test]
    fn round_trip_as_the_log_writes_them() {
        let text = r#"{"h":"0x84000","o":"0o2000001"}"#;
        let f: Flags = serde_json::from_str(text).unwrap();
        assert_eq!(
            f,
            Flags {
                h: 0x84000,
                o: 0o2000001
            }
        );
        assert_eq!(serde_json::to_string(&f).unwrap(), text);
        let zero = Flags { h: 0, o: 0 };
        assert_eq!(
            serde_json::to_string(&zero).unwrap(),
            r#"{"h":"0x0","o":"0o0"}"#
        );
    }

    #[test]
    fn wrong_prefix_or_digits_are_errors() {
        assert!(serde_json::from_str::<Flags>(r#"{"h":"84000","o":"0o1"}"#).is_err());
        assert!(serde_json::from_str::<Flags>(r#"{"h":"0xzz","o":"0o1"}"#).is_err());
        assert!(serde_json::from_str::<Flags>(r#"{"h":"0x1","o":"0o9"}"#).is_err());
    }
}
