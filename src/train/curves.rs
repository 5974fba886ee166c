//! `OUT/curves.png`: loss and top-1 accuracy of the main classifier per epoch, training against
//! validation, redrawn after every epoch.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::metrics::EpochRecord;

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 450;
const FONT: &str = "sans-serif";

/// The chart's text uses DejaVu Sans, embedded in the program (plotters has no font of its own).
fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // A font that fails to parse only costs the labels; the lines are still drawn.
        let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Why the training curves cannot be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum CurvesError {
    /// The plot could not be drawn.
    #[error("drawing the curves: {0}")]
    Draw(String),
    /// The image could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The image file.
        path: String,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
}

fn draw_err(e: impl std::fmt::Display) -> CurvesError {
    CurvesError::Draw(e.to_string())
}

/// Draws the curves of `history` into a PNG at `path` (atomically).
pub fn write_curves(path: &Path, history: &[EpochRecord]) -> Result<(), CurvesError> {
    let png = render_png(history)?;
    super::checkpoint::write_atomically(path, &png).map_err(|source| CurvesError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The curves of `history` as PNG bytes.
pub fn render_png(history: &[EpochRecord]) -> Result<Vec<u8>, CurvesError> {
    register_fonts();
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        let epochs = history.iter().map(|r| r.epoch).max().unwrap_or(1) as f64;
        let series = |f: fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
            history
                .iter()
                .map(|r| (r.epoch as f64, f(r)))
                .filter(|(_, y)| y.is_finite())
                .collect()
        };
        let train_loss = series(|r| r.train.loss);
        let val_loss = series(|r| r.val.loss);
        let max_loss = train_loss
            .iter()
            .chain(&val_loss)
            .map(|p| p.1)
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.05;
        panel(
            &left,
            "Loss (weighted total)",
            "loss",
            SeriesLabelPosition::UpperRight,
            (0.5..epochs + 0.5, 0.0..max_loss),
            [("train", train_loss), ("validation", val_loss)],
        )?;
        panel(
            &right,
            "Top-1 accuracy (main classifier)",
            "top-1 (%)",
            SeriesLabelPosition::LowerRight,
            (0.5..epochs + 0.5, 0.0..100.0),
            [
                ("train", series(|r| 100.0 * r.train.main.top1)),
                ("validation", series(|r| 100.0 * r.val.main.top1)),
            ],
        )?;
        root.present().map_err(draw_err)?;
    }
    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, rgb).expect("buffer of the right size");
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(draw_err)?;
    Ok(png.into_inner())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn panel(
    area: &Area<'_>,
    title: &str,
    y_label: &str,
    legend: SeriesLabelPosition,
    (x_range, y_range): (std::ops::Range<f64>, std::ops::Range<f64>),
    lines: [(&str, Vec<(f64, f64)>); 2],
) -> Result<(), CurvesError> {
    let epochs_end = x_range.end;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range, y_range)
        .map_err(draw_err)?;
    let epochs = (epochs_end - 0.5).round() as usize;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_label)
        .label_style((FONT, 14))
        .x_labels(epochs.clamp(2, 12))
        // Whole epochs only.
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(draw_err)?;
    for ((name, points), color) in lines.into_iter().zip([BLUE, RED]) {
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(draw_err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}
