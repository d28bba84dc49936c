fn main() {
    let obj = include_bytes!(concat!(env!("OUT_DIR"), "/escapewatch"));
    println!("{}", obj.len());
}
