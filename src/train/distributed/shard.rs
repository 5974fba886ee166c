//! Which images of a global batch (or of the validation split) each rank takes: one contiguous
//! share per rank, in rank order, sizes differing by at most one (the first ranks take the
//! larger), so that the ranks together see every image exactly once.

use std::ops::Range;

/// The positions `0..len` that `rank` of `world_size` takes; empty when `len < world_size` and
/// `rank >= len`.
pub fn share(len: usize, world_size: usize, rank: usize) -> Range<usize> {
    let world_size = world_size.max(1);
    let (base, extra) = (len / world_size, len % world_size);
    let start = rank * base + rank.min(extra);
    let size = base + usize::from(rank < extra);
    start.min(len)..(start + size).min(len)
}

/// `rank`'s part of `items`.
pub fn shard<T>(items: &[T], world_size: usize, rank: usize) -> &[T] {
    &items[share(items.len(), world_size, rank)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_position_once_in_order() {
        for len in 0..40 {
            for world in 1..9 {
                let ranges: Vec<_> = (0..world).map(|r| share(len, world, r)).collect();
                let mut next = 0;
                for r in &ranges {
                    assert_eq!(r.start, next, "len {len} world {world}: {ranges:?}");
                    next = r.end;
                }
                assert_eq!(next, len);
                let sizes: Vec<_> = ranges.iter().map(|r| r.len()).collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(max - min <= 1, "{sizes:?}");
            }
        }
    }

    #[test]
    fn a_batch_of_16_over_2_ranks_is_two_halves() {
        assert_eq!(share(16, 2, 0), 0..8);
        assert_eq!(share(16, 2, 1), 8..16);
        assert_eq!(share(5, 2, 0), 0..3);
        assert_eq!(share(5, 2, 1), 3..5);
        assert_eq!(share(1, 3, 2), 1..1);
    }
}
