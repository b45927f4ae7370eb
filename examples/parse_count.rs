//! Parses a SIP message file N times: the parser's cost in instructions, which, unlike
//! criterion's times, does not depend on what else the machine is doing.
//!
//! ```sh
//! cargo build --release --example parse_count
//! B=target/release/examples/parse_count F=tests/data/sip/invite_sdp.sip
//! a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null $B $F 0 2>&1 | grep -o 'Collected : [0-9]*' | grep -o '[0-9]*$')
//! b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null $B $F 10000 2>&1 | grep -o 'Collected : [0-9]*' | grep -o '[0-9]*$')
//! echo $(( (b - a) / 10000 )) instructions per parse
//! ```
use std::hint::black_box;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .map_or("tests/data/sip/invite_sdp.sip", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let buf = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut total = 0usize;
    for _ in 0..n {
        total += callmeta::sip::parse(black_box(&buf)).map_or(0, |m| m.len);
    }
    println!("{total}");
    ExitCode::SUCCESS
}
