//! Work cut into a fixed number of groups, each summing into a partial of its own, so that adding
//! the partials in order gives the same bits from run to run.

/// Splits `items` into contiguous groups, `per_thread` per thread of the pool (fewer if there are
/// fewer items): returns (items per group, groups). Groups are fixed by the item count and the
/// pool size, never by timing, so that sums over them come out the same from run to run.
pub(crate) fn groups(items: usize, per_thread: usize) -> (usize, usize) {
    let wanted = (per_thread * rayon::current_num_threads()).clamp(1, items.max(1));
    let size = items.div_ceil(wanted).max(1);
    (size, items.div_ceil(size))
}
