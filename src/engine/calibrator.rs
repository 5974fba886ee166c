//! What int8 calibration records at a convolution's input: the range of the values it reads,
//! over every image that passes while recording is on.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use rayon::prelude::*;

use super::map::View;

/// The range recorder of one convolution.
#[derive(Default)]
pub(crate) struct Calibrator {
    recording: AtomicBool,
    /// The largest value, as f32 bits (non-negative floats order as their bits).
    largest: AtomicU32,
    /// The largest magnitude of a negative value, as f32 bits.
    most_negative: AtomicU32,
    /// Whether anything was recorded.
    seen: AtomicBool,
}

/// The range calibration saw: both bounds as magnitudes, at least 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct InputRange {
    /// The largest value (0 if none was positive).
    pub largest: f32,
    /// The magnitude of the most negative value (0 if none was negative).
    pub most_negative: f32,
}

impl Calibrator {
    /// Turns recording on or off.
    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Whether recording is on.
    pub fn is_recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// Widens the range to the values of `map` (NaNs aside).
    pub fn record(&self, map: View<f32>) {
        let channels = map.shape.c;
        let [largest, most_negative] = (0..map.shape.pixels())
            .into_par_iter()
            .map(|p| {
                let values = &map.data[p * map.stride + map.offset..][..channels];
                values
                    .iter()
                    .fold([0.0f32; 2], |[hi, lo], &x| [hi.max(x), lo.max(-x)])
            })
            .reduce(|| [0.0; 2], |a, b| [a[0].max(b[0]), a[1].max(b[1])]);
        self.largest.fetch_max(largest.to_bits(), Ordering::Relaxed);
        (self.most_negative).fetch_max(most_negative.to_bits(), Ordering::Relaxed);
        self.seen.store(true, Ordering::Relaxed);
    }

    /// The range recorded, or `None` if nothing was.
    pub fn range(&self) -> Option<InputRange> {
        self.seen.load(Ordering::Relaxed).then(|| InputRange {
            largest: f32::from_bits(self.largest.load(Ordering::Relaxed)),
            most_negative: f32::from_bits(self.most_negative.load(Ordering::Relaxed)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::map::Shape;

    #[test]
    fn records_both_ends_over_several_maps_of_its_channels_only() {
        let calibrator = Calibrator::default();
        assert_eq!(calibrator.range(), None);
        let shape = Shape {
            n: 1,
            h: 1,
            w: 2,
            c: 2,
        };
        // Two pixels of 3 channels, of which the view reads channels 1..3.
        let data = [-9.0, 1.5, 0.25, 100.0, f32::NAN, 2.0];
        calibrator.record(View::channels(&data, shape, 3, 1));
        assert_eq!(
            calibrator.range(),
            Some(InputRange {
                largest: 2.0,
                most_negative: 0.0
            })
        );
        calibrator.record(View::channels(&[-3.0, 0.5], shape.with_channels(1), 1, 0));
        assert_eq!(
            calibrator.range(),
            Some(InputRange {
                largest: 2.0,
                most_negative: 3.0
            })
        );
    }
}
