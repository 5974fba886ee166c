//! Which inputs the network takes: the sides of stages 4 and 5 (14 and 7 at 224, Table 1) for a
//! square input, and the smallest input each variant's pools and heads allow.

use super::pool::Pool;
use super::summary::SummaryError;
use super::variant::Variant;

/// Spatial sides after maxpool3 (stage 4: 14 at 224) and after maxpool4 (stage 5: 7 at 224).
pub(super) struct TrunkSides {
    pub(super) stage4: usize,
    pub(super) stage5: usize,
}

pub(super) fn trunk_sides(variant: Variant, input: usize) -> Result<TrunkSides, SummaryError> {
    stage_sides(variant, input)
        .filter(|&(s4, s5)| heads_fit(variant, s4, s5))
        .map(|(stage4, stage5)| TrunkSides { stage4, stage5 })
        .ok_or(SummaryError::InputTooSmall {
            input,
            min: min_input_size(variant),
        })
}

/// Sides of stages 4 and 5 for a square input of side `n`, if every layer up to there fits.
fn stage_sides(variant: Variant, n: usize) -> Option<(usize, usize)> {
    let (conv1, pool) = if variant.tf_same_padding() {
        (
            (n > 0).then(|| n.div_ceil(2))?,
            Pool::MaxSame {
                kernel: 3,
                stride: 2,
            },
        )
    } else {
        (
            (n + 6).checked_sub(7)? / 2 + 1,
            Pool::MaxCeil {
                kernel: 3,
                stride: 2,
                padding: 0,
            },
        )
    };
    let pool4 = match variant {
        Variant::Torchvision => Pool::MaxCeil {
            kernel: 2,
            stride: 2,
            padding: 0,
        },
        _ => pool,
    };
    let s4 = pool.output_size(pool.output_size(pool.output_size(conv1)?)?)?;
    Some((s4, pool4.output_size(s4)?))
}

/// The heads that pool without adapting need a large enough map: the aux heads' 5x5/3 pool and the
/// seed's 7x7 main pool.
fn heads_fit(variant: Variant, stage4: usize, stage5: usize) -> bool {
    match variant {
        Variant::Torchvision => true,
        Variant::Paper => stage4 >= 5,
        Variant::KerasSeed => stage4 >= 5 && stage5 >= 7,
    }
}

/// The smallest square input the variant's pools allow.
pub fn min_input_size(variant: Variant) -> usize {
    (1..4096)
        .find(|&n| stage_sides(variant, n).is_some_and(|(s4, s5)| heads_fit(variant, s4, s5)))
        .unwrap_or(4096)
}
