//! The memory and table limits of one plugin instance.

use wasmtime::ResourceLimiter;

/// Table elements a plugin may grow to. Tables hold function references;
/// a real plugin needs a few hundred, so this bounds a hostile one without
/// getting in an honest one's way.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The share of its memory limit, in percent, past which an instance whose
/// linear memory grew since it was made is replaced between calls. Linear
/// memory never shrinks, and some language runtimes (ComponentizeJS 0.23
/// keeps about 2 KiB per call) grow it with every call: without this such an
/// instance would fault on the call that crosses the limit.
pub const RECYCLE_AT_PERCENT: usize = 75;

/// Whether an instance that started with `at_start` bytes of linear memory
/// and now has `now` should be replaced before its next call: it crossed
/// [`RECYCLE_AT_PERCENT`] of `limit` since it was made. One that started
/// past the mark is left alone (recycling it would only make another just
/// like it); it faults if it outgrows the limit.
pub fn crept_past_high_water(limit: usize, at_start: usize, now: usize) -> bool {
    let mark = limit / 100 * RECYCLE_AT_PERCENT + limit % 100 * RECYCLE_AT_PERCENT / 100;
    now >= mark && at_start < mark
}

/// Enforces the manifest's memory limit and remembers a refusal, so that the
/// trap that follows (the guest's allocator aborts) is reported as a memory
/// fault rather than a bare `unreachable`.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    /// Set when a growth was refused during the current call; taken by fault
    /// classification.
    refused: Option<usize>,
    /// Bytes of linear memory granted so far, over every memory of the
    /// instance: wasmtime asks for a memory's initial size too, so this is
    /// the instance's whole linear memory.
    granted: usize,
}

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes of linear memory.
    pub fn new(limit: u64) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            refused: None,
            granted: 0,
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes of linear memory the instance has (every memory's current size).
    pub fn memory_bytes(&self) -> usize {
        self.granted
    }

    /// The size that was refused since the last call to this, if any.
    pub fn take_refusal(&mut self) -> Option<usize> {
        self.refused.take()
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            // Returning false makes `memory.grow` fail with -1, which is what
            // a guest allocator expects on exhaustion: it gets to fail cleanly.
            return Ok(false);
        }
        self.granted = self.granted.saturating_add(desired.saturating_sub(current));
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_recycled_when_its_memory_crept_past_three_quarters() {
        const MIB: usize = 1 << 20;
        // The JS example: 9.1 MiB at start, 32 MiB limit, 24 MiB the mark.
        assert!(!crept_past_high_water(32 * MIB, 9 * MIB, 23 * MIB));
        assert!(crept_past_high_water(32 * MIB, 9 * MIB, 24 * MIB));
        assert!(crept_past_high_water(32 * MIB, 9 * MIB, 31 * MIB));
        // Started past the mark: recycling would not help.
        assert!(!crept_past_high_water(32 * MIB, 25 * MIB, 31 * MIB));
        // No limit to speak of: never.
        assert!(!crept_past_high_water(usize::MAX, 9 * MIB, 31 * MIB));
        assert!(crept_past_high_water(usize::MAX, 0, usize::MAX));
    }

    #[test]
    fn refuses_growth_past_the_limit_and_remembers_it() {
        let mut l = MemoryLimiter::new(1 << 20);
        assert!(l.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(l.take_refusal(), None);
        assert!(!l.memory_growing(1 << 20, (1 << 20) + 65536, None).unwrap());
        assert_eq!(l.take_refusal(), Some((1 << 20) + 65536));
        assert_eq!(l.take_refusal(), None);
        assert!(!l.table_growing(0, MAX_TABLE_ELEMENTS + 1, None).unwrap());
    }

    #[test]
    fn counts_every_memory_and_only_granted_growth() {
        let mut l = MemoryLimiter::new(1 << 20);
        assert_eq!(l.memory_bytes(), 0);
        // Two memories created (current 0), then one grows.
        assert!(l.memory_growing(0, 128 << 10, None).unwrap());
        assert!(l.memory_growing(0, 64 << 10, None).unwrap());
        assert!(l.memory_growing(128 << 10, 192 << 10, None).unwrap());
        assert_eq!(l.memory_bytes(), 256 << 10);
        // A refused growth adds nothing.
        assert!(!l.memory_growing(192 << 10, 2 << 20, None).unwrap());
        assert_eq!(l.memory_bytes(), 256 << 10);
    }
}
