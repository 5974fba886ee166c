//! A new run's configuration from the command line (a recipe and its overrides, fitted to the
//! data), and its data: an ImageNet-layout folder or the embedded synthetic shapes.

use anyhow::Result;

use super::TrainArgs;
use crate::data::synthetic::SyntheticShapes;
use crate::model::Variant;
use crate::train::config::DEFAULT_SEED;
use crate::train::folders::ImageFolders;
use crate::train::{Recipe, Synthetic, TrainConfig, TrainData};
use crate::weights::WeightsSource;

/// Epochs of a run on the embedded shapes when `--epochs` is not given: enough to see the
/// accuracy climb well above chance in a few minutes on a laptop.
pub const DEMO_EPOCHS: usize = 6;
/// Input side of a run on the embedded shapes when `--input-size` is not given.
pub const DEMO_INPUT_SIZE: usize = 96;

/// The variant of the embedded demo when --variant is not given.
pub const DEMO_VARIANT: Variant = Variant::Torchvision;

pub(super) fn new_config(args: &TrainArgs) -> Result<TrainConfig> {
    let named = args.weights.as_ref().and_then(WeightsSource::variant);
    let variant = args.variant.or(named).unwrap_or(match args.data {
        Some(_) => Variant::Paper,
        None => DEMO_VARIANT,
    });
    if args
        .weights
        .as_ref()
        .is_some_and(WeightsSource::transform_input)
    {
        eprintln!(
            "note: training does not apply torchvision's transform_input, which these weights \
             were made with: their first layer sees ImageNet-normalised input instead"
        );
    }
    let (input_size, classes) = match &args.data {
        Some(root) => {
            let size = args.input_size.unwrap_or(224);
            let data = ImageFolders::open(root, variant, size)?;
            (size, data.class_names().len())
        }
        None => {
            let min = crate::model::input_size::min_input_size(variant);
            let size = args.input_size.unwrap_or(DEMO_INPUT_SIZE.max(min));
            (size, crate::data::synthetic::CLASSES.len())
        }
    };
    let mut overrides = args.overrides()?;
    if args.data.is_none() && overrides.epochs.is_none() {
        overrides.epochs = Some(DEMO_EPOCHS);
    }
    let mut config = TrainConfig::recipe(
        args.recipe.unwrap_or(Recipe::Paper),
        variant,
        input_size,
        classes,
    )
    .with_overrides(&overrides);
    config.data = args.data.clone();
    config.seed = args.seed.unwrap_or(DEFAULT_SEED);
    Ok(config)
}

pub(super) fn open_data(
    config: &TrainConfig,
    strict: bool,
    budget: crate::data::image::PixelBudget,
) -> Result<Box<dyn TrainData>> {
    match &config.data {
        Some(root) => Ok(Box::new(
            ImageFolders::open(root, config.variant, config.input_size)?
                .with_strict(strict)
                .with_pixel_budget(budget),
        )),
        None => Ok(Box::new(Synthetic {
            set: SyntheticShapes {
                side: config.input_size,
                ..SyntheticShapes::standard()
            },
            variant: config.variant,
        })),
    }
}
