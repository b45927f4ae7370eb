//! Proves the SIP scanner's promise of no heap allocation per message: a counting global
//! allocator records every allocation made on the measuring thread while a realistic
//! INVITE and 200 OK (both with SDP) are parsed and their codecs listed.
//!
//! Counting is per thread (a const-initialised thread-local, which itself never
//! allocates) so the test harness's own threads cannot disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use callmeta::sip::{self, sdp};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const INVITE: &[u8] = include_bytes!("data/sip/invite_sdp.sip");
const OK_200: &[u8] = include_bytes!("data/sip/ok_200_sdp.sip");

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test itself: a counter that never counts would prove nothing.
    let n = allocations_during(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(n, 1);
}

#[test]
fn parsing_invite_and_200_ok_allocates_nothing() {
    let mut fields = 0usize;
    let n = allocations_during(|| {
        for buf in [INVITE, OK_200] {
            assert!(sip::looks_like_sip(buf));
            let m = sip::parse(std::hint::black_box(buf)).expect("fixture parses");
            fields += m.call_id.len() + m.from.tag.map_or(0, <[u8]>::len);
            fields += sdp::codecs(m.body).count() + sdp::media(m.body).count();
        }
        // The error path allocates nothing either.
        let err = sip::parse(std::hint::black_box(&INVITE[..40])).unwrap_err();
        fields += err.kind().len();
    });
    assert_eq!(n, 0, "allocations while parsing");
    assert!(fields > 0);
}
