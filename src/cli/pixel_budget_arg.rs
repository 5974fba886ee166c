//! `--max-image-pixels`, shared by the commands that decode images.

use clap::Args;

use crate::data::image::PixelBudget;

#[derive(Args, Debug, Clone, Copy)]
pub struct PixelBudgetArg {
    /// Refuse images with more pixels than this, read from the file's header before decoding
    /// (a skipped file like an unreadable one; an error with --strict). Default: twice PIL's
    /// MAX_IMAGE_PIXELS, 178956970; above 89478485 pixels a warning.
    #[arg(long, value_name = "N")]
    pub max_image_pixels: Option<u64>,
}

impl PixelBudgetArg {
    /// The pixel budget the option asks for (the default when it is not given).
    pub fn budget(&self) -> PixelBudget {
        PixelBudget::from_option(self.max_image_pixels)
    }
}
