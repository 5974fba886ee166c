//! Class names: the 1000 ImageNet-1k classes built in, or read from a names file.
//!
//! The built-in table `imagenet_classes.tsv` (index, wnid, name) was made from timm 1.0.31's
//! packaged `timm/data/_info/imagenet_synsets.txt` (the 1000 wnids in sorted order, which is
//! torchvision's ImageFolder order of the ILSVRC2012 folders) and
//! `timm/data/_info/imagenet_synset_to_lemma.txt` (WordNet lemmas), Apache-2.0.

use std::path::Path;

use super::DataError;

const IMAGENET_TSV: &str = include_str!("imagenet_classes.tsv");

/// One class: its WordNet id (empty when the dataset's folders are not wnids) and its name.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClassEntry {
    /// WordNet id, such as `n01440764`; empty when the folders are not wnids.
    pub wnid: String,
    /// Human-readable class name.
    pub name: String,
}

/// Class index -> (wnid, name).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClassTable {
    entries: Vec<ClassEntry>,
}

impl ClassTable {
    /// The 1000 ImageNet-1k classes, index 0 = n01440764 "tench, Tinca tinca".
    pub fn imagenet() -> Self {
        let entries = IMAGENET_TSV
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, '\t');
                let (_index, wnid, name) = (fields.next()?, fields.next()?, fields.next()?);
                Some(ClassEntry {
                    wnid: wnid.to_string(),
                    name: name.to_string(),
                })
            })
            .collect();
        ClassTable { entries }
    }

    /// A table from its entries, in index order.
    pub fn from_entries(entries: Vec<ClassEntry>) -> Self {
        ClassTable { entries }
    }

    /// Classes named by dataset folders (in the order given, normally sorted): a folder named
    /// by an ImageNet wnid gets its ImageNet name, any other folder is its own name.
    pub fn from_folder_names<S: AsRef<str>>(names: &[S]) -> Self {
        let imagenet = ClassTable::imagenet();
        let entries = names
            .iter()
            .map(|folder| {
                let folder = folder.as_ref();
                match imagenet.index_of(folder) {
                    Some(i) => imagenet.entries[i].clone(),
                    None => ClassEntry {
                        wnid: String::new(),
                        name: folder.to_string(),
                    },
                }
            })
            .collect();
        ClassTable { entries }
    }

    /// Reads a names file, one class per line, in index order. Accepted lines:
    /// `n01440764 tench, Tinca tinca` (`LOC_synset_mapping.txt`), `0<TAB>n01440764<TAB>tench`
    /// (this crate's table), `n01440764` alone, or any other text (a plain name).
    pub fn from_file(path: &Path) -> Result<Self, DataError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| DataError::dataset(path, e.to_string()))?;
        let imagenet = ClassTable::imagenet();
        let entries: Vec<ClassEntry> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| {
                let mut entry = parse_names_line(line);
                if entry.name.is_empty() {
                    let known = imagenet.index_of(&entry.wnid).map(|i| imagenet.name(i));
                    entry.name = known.unwrap_or(&entry.wnid).to_string();
                }
                entry
            })
            .collect();
        if entries.is_empty() {
            return Err(DataError::dataset(path, "no class names in the file"));
        }
        Ok(ClassTable { entries })
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no class.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The wnid of class `index` ("" when unknown or out of range).
    pub fn wnid(&self, index: usize) -> &str {
        self.entries.get(index).map_or("", |e| e.wnid.as_str())
    }

    /// The name of class `index` ("" when out of range).
    pub fn name(&self, index: usize) -> &str {
        self.entries.get(index).map_or("", |e| e.name.as_str())
    }

    /// "n01440764 tench, Tinca tinca", or just the name when there is no wnid, or
    /// "class 1234" when out of range.
    pub fn label(&self, index: usize) -> String {
        match self.entries.get(index) {
            Some(e) if e.wnid.is_empty() => e.name.clone(),
            Some(e) => format!("{} {}", e.wnid, e.name),
            None => format!("class {index}"),
        }
    }

    /// The index of a class by wnid (or by name, for classes without a wnid).
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.wnid == key || (e.wnid.is_empty() && e.name == key))
    }

    /// The classes in label order.
    pub fn entries(&self) -> &[ClassEntry] {
        &self.entries
    }
}

fn is_wnid(s: &str) -> bool {
    s.len() == 9 && s.starts_with('n') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

fn parse_names_line(line: &str) -> ClassEntry {
    let fields: Vec<&str> = line.splitn(3, '\t').collect();
    if fields.len() == 3 && is_wnid(fields[1]) {
        return ClassEntry {
            wnid: fields[1].to_string(),
            name: fields[2].to_string(),
        };
    }
    let (first, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    if is_wnid(first) {
        ClassEntry {
            wnid: first.to_string(),
            name: rest.trim().to_string(),
        }
    } else {
        ClassEntry {
            wnid: String::new(),
            name: line.to_string(),
        }
    }
}
