//! Minimal reader for the running kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! The eBPF programs cannot use CO-RE relocations, so the agent resolves the
//! struct member offsets they need at load time from the kernel's own BTF and
//! hands them over. Only what that needs is here: walking the type section,
//! finding structs by name and resolving dotted member paths (through anonymous
//! structs/unions and typedefs) to byte offsets. The format is described in the
//! kernel's `include/uapi/linux/btf.h` and `Documentation/bpf/btf.rst`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

const MAGIC: u16 = 0xeb9f;
const HDR_LEN: usize = 24;
const REC_LEN: usize = 12; // struct btf_type: name_off, info, size/type

const INT: u8 = 1;
const PTR: u8 = 2;
const ARRAY: u8 = 3;
const STRUCT: u8 = 4;
const UNION: u8 = 5;
const ENUM: u8 = 6;
const FWD: u8 = 7;
const TYPEDEF: u8 = 8;
const VOLATILE: u8 = 9;
const CONST: u8 = 10;
const RESTRICT: u8 = 11;
const FUNC: u8 = 12;
const FUNC_PROTO: u8 = 13;
const VAR: u8 = 14;
const DATASEC: u8 = 15;
const FLOAT: u8 = 16;
const DECL_TAG: u8 = 17;
const TYPE_TAG: u8 = 18;
const ENUM64: u8 = 19;

/// Bound on typedef/qualifier/array chains and anonymous-member nesting, so
/// corrupt (cyclic) BTF produces an error instead of looping or overflowing.
const MAX_DEPTH: usize = 64;

fn kind_name(kind: u8) -> &'static str {
    const NAMES: &str = "void|int|pointer|array|struct|union|enum|forward declaration|\
        typedef|volatile|const|restrict|function|function prototype|variable|data section|\
        float|decl tag|type tag|enum64";
    NAMES
        .split('|')
        .nth(usize::from(kind))
        .unwrap_or("unknown kind")
}

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF from {path} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "not BTF data: magic {found:#06x}, expected 0xeb9f (0x9feb means BTF of the \
         opposite byte order, which is not supported)"
    )]
    BadMagic { found: u16 },
    #[error("unsupported BTF version {version} (only version 1 is known)")]
    UnsupportedVersion { version: u8 },
    #[error("BTF is truncated: {what} at byte {offset} runs past the end of the data")]
    Truncated { what: &'static str, offset: usize },
    #[error(
        "BTF type id {type_id} has unknown kind {kind}; the kernel's BTF is newer than this parser"
    )]
    UnknownKind { kind: u8, type_id: u32 },
    #[error("malformed BTF: {what}")]
    Malformed { what: String },
    #[error("kernel BTF has no struct named `{name}`")]
    NoSuchStruct { name: String },
    #[error(
        "kernel BTF has no member `{member}` in {container} (resolving `{path}` in struct \
         {struct_name}); the field may be renamed or compiled out in this kernel"
    )]
    NoSuchMember {
        struct_name: String,
        path: String,
        member: String,
        container: String,
    },
    #[error(
        "member `{path}` of struct {struct_name} is a {bits}-bit bitfield, which has no byte offset"
    )]
    Bitfield {
        struct_name: String,
        path: String,
        bits: u32,
    },
    #[error(
        "member `{path}` of struct {struct_name} starts at bit {bit_offset}, which is not byte-aligned"
    )]
    Unaligned {
        struct_name: String,
        path: String,
        bit_offset: u64,
    },
    #[error(
        "`{step}` in `{path}` (struct {struct_name}) is a {kind}, not a struct or union, so the \
         path cannot continue through it (pointers must be read and followed separately)"
    )]
    NotAStruct {
        struct_name: String,
        path: String,
        step: String,
        kind: &'static str,
    },
    #[error("BTF type id {type_id} is a {kind}, which has no size")]
    NoSize { type_id: u32, kind: &'static str },
    #[error(
        "kernel BTF struct {struct_name} has none of the alternative members {}: {}",
        .tried.join(", "), .reasons.join("; ")
    )]
    NoneOfPaths {
        struct_name: String,
        tried: Vec<String>,
        reasons: Vec<String>,
    },
}

/// A struct member: (bit offset, type id, bitfield size or 0).
type Member = (u64, u32, u32);

fn malformed(what: String) -> BtfError {
    BtfError::Malformed { what }
}

fn le32(buf: &[u8], off: usize) -> Option<u32> {
    let bytes = buf.get(off..off.checked_add(4)?)?;
    <[u8; 4]>::try_from(bytes).ok().map(u32::from_le_bytes)
}

/// One `struct btf_type`; its trailing data (members, params, ...) is left in
/// `Btf::type_data` at `data` and decoded on demand, which keeps parsing cheap.
#[derive(Clone, Copy, Default)]
struct Ty {
    name_off: u32,
    info: u32,
    size_or_type: u32,
    data: u32,
}

impl Ty {
    fn kind(self) -> u8 {
        ((self.info >> 24) & 0x1f) as u8
    }
    fn vlen(self) -> usize {
        (self.info & 0xffff) as usize
    }
    fn kind_flag(self) -> bool {
        self.info >> 31 == 1
    }
}

/// Parsed BTF: type records (index = type id; 0 is void), raw bytes, struct index.
pub struct Btf {
    types: Vec<Ty>,
    type_data: Vec<u8>,
    strings: Vec<u8>,
    structs: HashMap<Vec<u8>, u32>,
}

impl std::fmt::Debug for Btf {
    // The derived form would dump megabytes of raw data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf")
            .field("types", &(self.types.len() - 1))
            .field("structs", &self.structs.len())
            .finish_non_exhaustive()
    }
}

impl Btf {
    /// Reads and parses a BTF blob, normally `/sys/kernel/btf/vmlinux`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Btf, BtfError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Btf::parse(&bytes)
    }

    /// Parses raw little-endian BTF; corrupt or truncated input is an error.
    pub fn parse(bytes: &[u8]) -> Result<Btf, BtfError> {
        let trunc = |what, offset| BtfError::Truncated { what, offset };
        let hdr = bytes.get(..HDR_LEN).ok_or(trunc("header", 0))?;
        let found = u16::from_le_bytes([hdr[0], hdr[1]]);
        if found != MAGIC {
            return Err(BtfError::BadMagic { found });
        }
        if hdr[2] != 1 {
            return Err(BtfError::UnsupportedVersion { version: hdr[2] });
        }
        let field = |i: usize| le32(hdr, 4 + 4 * i).unwrap_or(0) as usize;
        // hdr_len may grow in future kernels; section offsets are relative to its end.
        let hdr_len = field(0);
        if hdr_len < HDR_LEN {
            return Err(malformed(format!(
                "header length {hdr_len} is shorter than {HDR_LEN}"
            )));
        }
        let section = |off: usize, len: usize, what| {
            let start = hdr_len.checked_add(off).ok_or(trunc(what, usize::MAX))?;
            let end = start.checked_add(len).ok_or(trunc(what, start))?;
            bytes.get(start..end).ok_or(trunc(what, start))
        };
        let tsec = section(field(1), field(2), "type section")?;
        let strings = section(field(3), field(4), "string section")?.to_vec();

        let mut btf = Btf {
            types: Vec::with_capacity(tsec.len() / 16 + 1),
            type_data: tsec.to_vec(),
            strings,
            structs: HashMap::new(),
        };
        btf.types.push(Ty::default());
        let mut off = 0;
        while off < tsec.len() {
            let type_id =
                u32::try_from(btf.types.len()).map_err(|_| malformed("too many types".into()))?;
            let rec = tsec
                .get(off..off + REC_LEN)
                .ok_or(trunc("type record", hdr_len + off))?;
            let word = |i: usize| le32(rec, 4 * i).unwrap_or(0);
            let ty = Ty {
                name_off: word(0),
                info: word(1),
                size_or_type: word(2),
                data: (off + REC_LEN) as u32,
            };
            // Each kind is followed by a different amount of trailing data (btf.h).
            let extra = match ty.kind() {
                INT | VAR | DECL_TAG => 4,
                ARRAY => 12,
                STRUCT | UNION | DATASEC | ENUM64 => 12 * ty.vlen(),
                ENUM | FUNC_PROTO => 8 * ty.vlen(),
                PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => 0,
                kind => return Err(BtfError::UnknownKind { kind, type_id }),
            };
            let end = off + REC_LEN + extra;
            if end > tsec.len() {
                return Err(trunc("type trailing data", hdr_len + off));
            }
            if ty.kind() == STRUCT {
                let name = btf.name(ty.name_off)?.to_vec();
                if !name.is_empty() {
                    // Prefer a definition with members over an empty duplicate.
                    let prev = btf
                        .structs
                        .get(&name)
                        .and_then(|&p| btf.types.get(p as usize));
                    if prev.is_none_or(|p| p.vlen() == 0 && ty.vlen() > 0) {
                        btf.structs.insert(name, type_id);
                    }
                }
            }
            btf.types.push(ty);
            off = end;
        }
        Ok(btf)
    }

    /// The enumerators of the ENUM named `name` (the first such enum with members), as
    /// (name, value); empty when the kernel has none.
    pub fn enum_values(&self, name: &str) -> Vec<(String, i64)> {
        for ty in self.types.iter().skip(1) {
            if ty.kind() != ENUM
                || ty.vlen() == 0
                || self.name(ty.name_off).ok() != Some(name.as_bytes())
            {
                continue;
            }
            let signed = ty.kind_flag();
            return (0..ty.vlen())
                .filter_map(|i| {
                    let off = ty.data as usize + 8 * i;
                    let n = self.name(le32(&self.type_data, off)?).ok()?;
                    let raw = le32(&self.type_data, off + 4)?;
                    let value = if signed {
                        i64::from(raw as i32)
                    } else {
                        i64::from(raw)
                    };
                    Some((String::from_utf8_lossy(n).into_owned(), value))
                })
                .collect();
        }
        Vec::new()
    }

    /// Type id of the STRUCT named `name`.
    pub fn struct_id(&self, name: &str) -> Option<u32> {
        self.structs.get(name.as_bytes()).copied()
    }

    /// Byte offset of the member at dotted `path` inside struct `struct_name`.
    pub fn member_offset(&self, struct_name: &str, path: &str) -> Result<u32, BtfError> {
        self.resolve(struct_name, path).map(|(off, _)| off)
    }

    /// Offset of the first of `paths` that resolves (fields get renamed across kernels).
    pub fn member_offset_any(&self, struct_name: &str, paths: &[&str]) -> Result<u32, BtfError> {
        let mut reasons = Vec::new();
        for path in paths {
            match self.member_offset(struct_name, path) {
                Ok(off) => return Ok(off),
                Err(e @ BtfError::NoSuchStruct { .. }) => return Err(e),
                Err(e) => reasons.push(e.to_string()),
            }
        }
        let tried = paths.iter().map(std::string::ToString::to_string).collect();
        Err(BtfError::NoneOfPaths {
            struct_name: struct_name.into(),
            tried,
            reasons,
        })
    }

    /// `sizeof(struct name)`.
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        Ok(self.ty(self.struct_or_err(name)?)?.size_or_type)
    }

    fn struct_or_err(&self, name: &str) -> Result<u32, BtfError> {
        let no_such = || BtfError::NoSuchStruct { name: name.into() };
        self.struct_id(name).ok_or_else(no_such)
    }

    /// Size in bytes of the member's type (typedefs/qualifiers resolved, pointers = 8).
    pub fn member_size(&self, struct_name: &str, path: &str) -> Result<u32, BtfError> {
        let (_, type_id) = self.resolve(struct_name, path)?;
        self.type_size(type_id)
    }

    fn resolve(&self, struct_name: &str, path: &str) -> Result<(u32, u32), BtfError> {
        let sid = self.struct_or_err(struct_name)?;
        let (mut container, mut type_id, mut bits, mut prev) = (sid, sid, 0u64, "");
        for (i, step) in path.split('.').enumerate() {
            if i > 0 {
                container = self.peel(type_id)?;
                let kind = self.ty(container)?.kind();
                if !matches!(kind, STRUCT | UNION) {
                    return Err(BtfError::NotAStruct {
                        struct_name: struct_name.into(),
                        path: path.into(),
                        step: prev.into(),
                        kind: kind_name(kind),
                    });
                }
            }
            // An empty step ("a..b") would otherwise match the first anonymous member.
            let found = match step {
                "" => None,
                _ => self.find_member(container, step.as_bytes(), 0)?,
            };
            let (found_bits, found_type, bitfield) =
                found.ok_or_else(|| BtfError::NoSuchMember {
                    struct_name: struct_name.into(),
                    path: path.into(),
                    member: step.into(),
                    container: self.describe(container),
                })?;
            if bitfield != 0 {
                return Err(BtfError::Bitfield {
                    struct_name: struct_name.into(),
                    path: path.into(),
                    bits: bitfield,
                });
            }
            bits += found_bits;
            type_id = found_type;
            prev = step;
        }
        if bits % 8 != 0 {
            return Err(BtfError::Unaligned {
                struct_name: struct_name.into(),
                path: path.into(),
                bit_offset: bits,
            });
        }
        let bytes = u32::try_from(bits / 8)
            .map_err(|_| malformed(format!("offset of `{path}` overflows")))?;
        Ok((bytes, type_id))
    }

    /// Looks for `name` among the members of struct/union `sid`, descending into
    /// anonymous struct/union members (C makes their fields visible in the parent).
    fn find_member(&self, sid: u32, name: &[u8], depth: usize) -> Result<Option<Member>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(malformed(format!(
                "anonymous members nested too deep at type id {sid}"
            )));
        }
        let t = *self.ty(sid)?;
        for i in 0..t.vlen() {
            let base = t.data as usize + i * REC_LEN;
            let (name_off, type_id, raw) =
                (self.word(base), self.word(base + 4), self.word(base + 8));
            // With kind_flag set, the offset word packs bitfield size (high 8 bits) and bit offset.
            let (bits, bitfield) = if t.kind_flag() {
                (raw & 0xff_ffff, raw >> 24)
            } else {
                (raw, 0)
            };
            let member_name = self.name(name_off)?;
            if member_name == name {
                let bitfield = if bitfield == 0 {
                    self.int_bitfield(type_id)?
                } else {
                    bitfield
                };
                return Ok(Some((u64::from(bits), type_id, bitfield)));
            }
            if member_name.is_empty() {
                let inner = self.peel(type_id)?;
                if matches!(self.ty(inner)?.kind(), STRUCT | UNION)
                    && let Some(mut found) = self.find_member(inner, name, depth + 1)?
                {
                    found.0 += u64::from(bits);
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Without kind_flag, a bitfield is a member whose INT type is narrower than its size.
    fn int_bitfield(&self, type_id: u32) -> Result<u32, BtfError> {
        let t = *self.ty(type_id)?;
        if t.kind() != INT {
            return Ok(0);
        }
        let enc = self.word(t.data as usize);
        let (nr_bits, bit_off) = (enc & 0xff, (enc >> 16) & 0xff);
        let full = u64::from(nr_bits) == u64::from(t.size_or_type) * 8;
        Ok(if full && bit_off == 0 { 0 } else { nr_bits })
    }

    /// Follows typedefs and qualifiers (never pointers) to the underlying type.
    fn peel(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_DEPTH {
            let t = self.ty(id)?;
            match t.kind() {
                TYPEDEF | CONST | VOLATILE | RESTRICT | TYPE_TAG => id = t.size_or_type,
                _ => return Ok(id),
            }
        }
        Err(malformed(format!(
            "typedef/qualifier chain too long at type id {id}"
        )))
    }

    fn type_size(&self, mut id: u32) -> Result<u32, BtfError> {
        let start = id;
        let overflow = || malformed(format!("size of array type id {start} overflows"));
        let mut count: u32 = 1;
        for _ in 0..MAX_DEPTH {
            id = self.peel(id)?;
            let t = *self.ty(id)?;
            let size = match t.kind() {
                INT | STRUCT | UNION | ENUM | ENUM64 | FLOAT | DATASEC => t.size_or_type,
                PTR => 8,
                ARRAY => {
                    // struct btf_array { type, index_type, nelems }
                    count = count
                        .checked_mul(self.word(t.data as usize + 8))
                        .ok_or_else(overflow)?;
                    id = self.word(t.data as usize);
                    continue;
                }
                kind => {
                    return Err(BtfError::NoSize {
                        type_id: id,
                        kind: kind_name(kind),
                    });
                }
            };
            return size.checked_mul(count).ok_or_else(overflow);
        }
        Err(malformed(format!("array nesting too deep at type id {id}")))
    }

    fn ty(&self, id: u32) -> Result<&Ty, BtfError> {
        self.types.get(id as usize).ok_or_else(|| {
            malformed(format!(
                "reference to type id {id}, but there are only {} types",
                self.types.len() - 1
            ))
        })
    }

    /// Reads trailing data; `parse` checked every record's trailing data fits, so
    /// the fallback is unreachable and only avoids a panic path.
    fn word(&self, off: usize) -> u32 {
        le32(&self.type_data, off).unwrap_or(0)
    }

    fn name(&self, off: u32) -> Result<&[u8], BtfError> {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let len = rest.iter().position(|&b| b == 0).ok_or_else(|| {
            malformed(format!(
                "name offset {off} is not a NUL-terminated string in the string section"
            ))
        })?;
        Ok(&rest[..len])
    }

    fn describe(&self, id: u32) -> String {
        let t = self.types.get(id as usize).copied().unwrap_or_default();
        match self.name(t.name_off).unwrap_or_default() {
            [] => format!("anonymous {}", kind_name(t.kind())),
            name => format!("{} {}", kind_name(t.kind()), String::from_utf8_lossy(name)),
        }
    }
}

#[cfg(test)]
mod tests;
