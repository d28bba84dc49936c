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

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

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
