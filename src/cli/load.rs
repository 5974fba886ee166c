//! The names of a loaded model's classes, from a names file, its weight file or ImageNet's list.

use std::path::Path;

use anyhow::Result;

use crate::data::ClassTable;

/// Names for a model's classes: a names file, else the names its weight file records, else
/// ImageNet's for a 1000-class model, else "class N".
pub fn class_table(
    recorded: Option<&[String]>,
    names_file: Option<&Path>,
    num_classes: usize,
) -> Result<ClassTable> {
    let table = if let Some(file) = names_file {
        ClassTable::from_file(file)?
    } else if let Some(names) = recorded {
        ClassTable::from_folder_names(names)
    } else if num_classes == crate::model::architecture::IMAGENET_CLASSES {
        ClassTable::imagenet()
    } else {
        ClassTable::from_folder_names(
            &(0..num_classes)
                .map(|i| format!("class {i}"))
                .collect::<Vec<_>>(),
        )
    };
    anyhow::ensure!(
        table.len() == num_classes,
        "the model has {num_classes} classes but the class names list {}",
        table.len()
    );
    Ok(table)
}
