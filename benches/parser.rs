//! The SIP scanner's hot path: one realistic INVITE with SDP (the fixture in
//! tests/data/sip/invite_sdp.sip), its 200 OK with SDP, and the SDP codec summary of the
//! INVITE's body. Throughput is one message per iteration, so criterion reports
//! messages per second.

use std::hint::black_box;

use callmeta::sip::{self, sdp};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const INVITE: &[u8] = include_bytes!("../tests/data/sip/invite_sdp.sip");
const OK_200: &[u8] = include_bytes!("../tests/data/sip/ok_200_sdp.sip");

fn parser(c: &mut Criterion) {
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_invite_sdp", |b| {
        b.iter(|| sip::parse(black_box(INVITE)).map(|m| m.len))
    });
    g.bench_function("parse_200_ok_sdp", |b| {
        b.iter(|| sip::parse(black_box(OK_200)).map(|m| m.len))
    });
    g.bench_function("looks_like_sip_invite", |b| {
        b.iter(|| sip::looks_like_sip(black_box(INVITE)))
    });
    let body = sip::parse(INVITE).expect("fixture parses").body;
    g.bench_function("sdp_codecs_invite", |b| {
        b.iter(|| sdp::codecs(black_box(body)).fold(0usize, |n, c| n + c.len()))
    });
    g.finish();
}

criterion_group!(benches, parser);
criterion_main!(benches);
