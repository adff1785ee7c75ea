//! Memory that large webhook envelopes held goes back to the OS once none is held any more.
//!
//! The handler's allocator is mimalloc (`src/main.rs`). It keeps freed memory for reuse and
//! returns it to the OS (purges it) only after a delay, and only when the allocator runs again:
//! after a flood of 5 MB calls an idle handler stayed at the flood's peak (measured: VmRSS
//! 43 → 110 MB after 100 rejected 5 MB calls, 25 at a time; the envelope bound keeps at most
//! 32 MiB of envelopes at once). When the last large envelope is given back, [`give_back`]
//! asks mimalloc to collect and purge at once, on the thread the call ends on: `mi_collect`
//! reaches that thread's heap and the shared arenas only, so one collection from a background
//! task or a blocking thread, 100 ms after a flood, left 10–15 MB resident where collecting at
//! the end of each call leaves about 5 (e2e_webhook's flood of 100 × 5 MB). Not glibc: `malloc_trim` would not reach
//! mimalloc's arenas, and `MALLOC_ARENA_MAX` does not apply to it.

/// Collects and purges freed memory now (about 0.1–1 ms; called only after large envelopes).
pub fn give_back() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time;
    // mimalloc is always linked (the `mimalloc` dependency builds it). Where it is not the
    // global allocator (tests), it collects mimalloc's own unused heap: a no-op.
    unsafe { mi_collect(true) }
}

// Links mimalloc's library into every binary of this crate (tests too), whatever the global
// allocator: `mi_collect` below comes from it.
extern crate mimalloc as _;

unsafe extern "C" {
    /// mimalloc's `void mi_collect(bool force)` (`mimalloc.h`; declared here because the
    /// `mimalloc` crate exposes it only with its `extended` feature, which adds a crate).
    fn mi_collect(force: bool);
}
