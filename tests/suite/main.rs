//! The integration tests, one binary: each module is one concern of the library or the CLI (one
//! linked test program instead of one per file keeps the release build small and quick to link).

mod alloc_probe;
mod backend_wgpu;
mod cli_classify_eval;
mod cli_devices;
mod common;
mod data_dataset;
mod data_decode;
mod data_loader;
mod data_pixel_budget;
mod data_region;
mod data_strict;
mod data_transform;
mod device;
mod eval_crops;
mod eval_metrics;
mod fast_inference;
mod fast_train;
mod fuzz;
mod model_batch_norm;
mod model_forward;
mod model_precision;
mod model_summary;
mod onnx_export;
mod pointwise_conv;
mod train_cli;
mod train_data_parallel;
mod train_flat_val;
mod train_kill;
mod train_recipes;
mod train_resume;
mod train_sgd_step;
mod train_small_batch;
mod weights_files;
mod weights_keras;
mod weights_torchvision;
