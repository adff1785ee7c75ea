#![no_main]
//! See `defender_sentinel_sync::fuzzing::webhook_trigger` for what is parsed and which properties hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    defender_sentinel_sync::fuzzing::webhook_trigger(data);
});
