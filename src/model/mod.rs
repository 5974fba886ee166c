//! GoogLeNet (Inception v1) in its three variants: the paper's, torchvision's and the Keras seed's.
//!
//! One module per concept: [`architecture`] holds Table 1 as data, [`variant`] what differs between
//! the references, and the layers build up from [`conv_unit`] to [`googlenet`].

pub mod architecture;
pub mod aux_head;
pub mod batch_norm;
pub mod conv_unit;
pub mod googlenet;
pub mod inception;
pub mod input_size;
mod layer_table;
pub mod pool;
pub mod precision;
pub mod summary;
pub mod table1;
pub mod variant;

pub use googlenet::{GoogLeNet, GoogLeNetConfig, GoogLeNetOutput};
pub use variant::Variant;
