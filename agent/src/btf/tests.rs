use super::*;

/// Tiny BTF writer; type ids are handed out in call order starting at 1.
#[derive(Default)]
struct W(Vec<u8>, Vec<u8>, u32);
type M<'a> = (&'a str, u32, u32);

impl W {
    fn s(&mut self, name: &str) -> u32 {
        if self.1.is_empty() {
            self.1.push(0); // offset 0 is the empty name
        }
        if name.is_empty() {
            return 0;
        }
        self.1.extend(name.as_bytes());
        self.1.push(0);
        (self.1.len() - name.len() - 1) as u32
    }
    /// `info` is `kind << 24`, plus `1 << 31` for kind_flag.
    fn ty(&mut self, info: u32, name: &str, st: u32, extra: &[u32]) -> u32 {
        for w in [self.s(name), info, st].iter().chain(extra) {
            self.0.extend(w.to_le_bytes());
        }
        self.2 += 1;
        self.2
    }
    /// A struct or union; vlen comes from `members`.
    fn comp(&mut self, info: u32, name: &str, size: u32, members: &[M]) -> u32 {
        let words: Vec<u32> = members
            .iter()
            .flat_map(|&(n, t, o)| [self.s(n), t, o])
            .collect();
        self.ty(info | members.len() as u32, name, size, &words)
    }
    fn finish(&self) -> Vec<u8> {
        let mut out = vec![0x9f, 0xeb, 1, 0];
        let (tl, sl) = (self.0.len() as u32, self.1.len() as u32);
        for w in [24, 0, tl, tl, sl] {
            out.extend(w.to_le_bytes());
        }
        out.extend(self.0.iter().chain(&self.1));
        out
    }
}

const fn k(kind: u8) -> u32 {
    (kind as u32) << 24
}

fn fixture() -> Vec<u8> {
    let mut w = W::default();
    let int = w.ty(k(INT), "int", 4, &[32]);
    let long = w.ty(k(INT), "long", 8, &[64]);
    let inner = w.comp(k(STRUCT), "inner", 8, &[("a", int, 0), ("b", int, 32)]);
    let inner_t = w.ty(k(TYPEDEF), "inner_t", inner, &[]);
    let un = w.comp(k(UNION), "", 8, &[("x", long, 0), ("y", int, 0)]);
    let anon = w.comp(k(STRUCT), "", 16, &[("pad", long, 0), ("", un, 64)]);
    let ptr = w.ty(k(PTR), "", inner, &[]);
    let arr = w.ty(k(ARRAY), "", 0, &[int, int, 4]);
    let outer = [
        ("first", int, 0),
        ("", anon, 64),
        ("nested", inner_t, 192),
        ("p", ptr, 256),
        ("arr", arr, 320),
    ];
    w.comp(k(STRUCT), "outer", 56, &outer);
    let flags = [("a", int, 0), ("bf", int, 3 << 24 | 32), ("c", int, 64)];
    w.comp(k(STRUCT) | 1 << 31, "flags", 12, &flags);
    let looped = w.2 + 1; // a typedef of itself: corrupt, must not hang
    w.ty(k(TYPEDEF), "loop_t", looped, &[]);
    w.comp(k(STRUCT), "cyclic", 8, &[("l", looped, 0)]);
    w.finish()
}

/// Asserts that `r` failed with `variant` and a message containing `text`.
#[track_caller]
fn fails<T: std::fmt::Debug>(r: Result<T, BtfError>, variant: &str, text: &str) {
    let e = r.unwrap_err();
    let ok = format!("{e:?}").starts_with(variant) && e.to_string().contains(text);
    assert!(ok, "expected {variant} containing {text:?}, got {e:?}: {e}");
}

fn btf() -> Btf {
    Btf::parse(&fixture()).expect("fixture parses")
}

#[test]
fn plain_member_and_sizes() {
    let b = btf();
    assert_eq!(b.member_offset("outer", "first").unwrap(), 0);
    assert_eq!(b.member_offset("outer", "arr").unwrap(), 40);
    assert_eq!(b.struct_size("outer").unwrap(), 56);
    let sizes = ["first", "p", "arr"].map(|m| b.member_size("outer", m).unwrap());
    assert_eq!(sizes, [4, 8, 16]);
}

#[test]
fn member_inside_anonymous_union_inside_anonymous_struct() {
    let b = btf();
    let offs = ["pad", "x", "y"].map(|m| b.member_offset("outer", m).unwrap());
    assert_eq!(offs, [8, 16, 16]);
    assert_eq!(b.member_size("outer", "x").unwrap(), 8);
}

#[test]
fn nested_path_through_typedef_but_not_pointer() {
    let b = btf();
    assert_eq!(b.member_offset("outer", "nested.b").unwrap(), 28);
    assert_eq!(b.member_size("outer", "nested").unwrap(), 8);
    let r = b.member_offset("outer", "p.a");
    fails(r, "NotAStruct", "`p` in `p.a` (struct outer) is a pointer");
    let r = b.member_offset("outer", "nested.zz");
    fails(r, "NoSuchMember", "no member `zz` in struct inner");
    let r = b.member_offset("outer", "nested.");
    fails(r, "NoSuchMember", "no member `` in struct inner");
    let r = b.member_offset("cyclic", "l.x");
    fails(r, "Malformed", "chain too long");
}

#[test]
fn kind_flag_bitfields() {
    let b = btf();
    assert_eq!(b.member_offset("flags", "a").unwrap(), 0);
    assert_eq!(b.member_offset("flags", "c").unwrap(), 8);
    let r = b.member_offset("flags", "bf");
    fails(r, "Bitfield", "is a 3-bit bitfield");
}

#[test]
fn any_falls_back_and_lists_tried() {
    let b = btf();
    let off = b.member_offset_any("outer", &["gone", "nested.a", "first"]);
    assert_eq!(off.unwrap(), 24);
    let e = b.member_offset_any("outer", &["gone", "p.a"]);
    fails(
        e,
        "NoneOfPaths",
        "none of the alternative members gone, p.a: kernel BTF has no member `gone`",
    );
}

#[test]
fn corrupt_input_is_an_error() {
    let full = fixture();
    for len in 0..full.len() {
        let r = Btf::parse(&full[..len]);
        assert!(r.is_err(), "{len}-byte prefix parsed");
    }
    fails(Btf::parse(&full[..10]), "Truncated", "header at byte 0");
    // Shrink type_len so the first INT's trailing word is cut off.
    let mut cut = full.clone();
    cut[12..16].copy_from_slice(&14u32.to_le_bytes());
    let r = Btf::parse(&cut);
    fails(r, "Truncated", "type trailing data at byte 24");
    let mut swapped = full.clone();
    swapped.swap(0, 1);
    fails(Btf::parse(&swapped), "BadMagic", "magic 0x9feb");
    let mut w = W::default();
    w.ty(25 << 24, "odd", 0, &[]);
    let r = Btf::parse(&w.finish());
    fails(r, "UnknownKind", "type id 1 has unknown kind 25");
}

#[test]
fn unknown_struct() {
    let b = btf();
    let r = b.member_offset("nope", "a");
    fails(r, "NoSuchStruct", "no struct named `nope`");
    fails(b.struct_size("inner_t"), "NoSuchStruct", "`inner_t`");
    assert!(b.struct_id("inner").is_some() && b.struct_id("inner_t").is_none());
}

/// `bits_offset` of `member` listed directly in STRUCT `strukt` of bpftool's raw dump.
fn bpftool_bits(dump: &str, strukt: &str, member: &str) -> Option<u64> {
    let (header, want) = (
        format!("] STRUCT '{strukt}' size="),
        format!("'{member}' type_id="),
    );
    let mut lines = dump.lines().skip_while(|l| !l.contains(&header)).skip(1);
    let line = lines.find(|l| !l.starts_with('\t') || l.trim_start().starts_with(&want))?;
    let line = line.strip_prefix('\t')?; // else the struct's block ended without it
    let bits = line
        .split("bits_offset=")
        .nth(1)?
        .split_whitespace()
        .next()?;
    bits.parse().ok()
}

#[test]
fn real_kernel_vmlinux() {
    let path = "/sys/kernel/btf/vmlinux";
    let b = Btf::from_file(path).unwrap_or_else(|e| panic!("this test needs kernel BTF: {e}"));
    let get = |s, p| b.member_offset(s, p).unwrap_or_else(|e| panic!("{e}"));
    let ours = [
        ("task_struct", "nsproxy"),
        ("task_struct", "tgid"),
        ("nsproxy", "mnt_ns"),
    ]
    .map(|(s, m)| (s, m, get(s, m)));
    let inum = get("mnt_namespace", "ns.inum");
    let cmd = std::process::Command::new("/usr/sbin/bpftool")
        .args(["btf", "dump", "file", path, "format", "raw"])
        .output();
    let Ok(out) = cmd else {
        return eprintln!("bpftool not runnable; skipping the cross-check");
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8_lossy(&out.stdout);
    let mut checked = 0;
    for (s, m, off) in ours {
        // Members inside an anonymous struct (randstruct) are not listed directly.
        if let Some(bits) = bpftool_bits(&dump, s, m) {
            assert_eq!(u64::from(off), bits / 8, "{s}.{m}");
            checked += 1;
        }
    }
    assert!(checked > 0, "no member could be cross-checked with bpftool");
    let ns = bpftool_bits(&dump, "mnt_namespace", "ns").expect("mnt_namespace.ns");
    let ns_inum = bpftool_bits(&dump, "ns_common", "inum").expect("ns_common.inum");
    assert_eq!(u64::from(inum), (ns + ns_inum) / 8);
}
