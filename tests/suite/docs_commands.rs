//! Every `googlenet ...` line in a fenced block of README.md and docs/*.md parses with the
//! current command line (clap's own parser), so the documentation shows commands that exist.

use std::path::{Path, PathBuf};

use clap::Parser;
use clap::error::ErrorKind;
use googlenet::cli::Cli;

/// The `googlenet` command lines of the fenced blocks of `text`: continuation lines joined,
/// trailing `# comments` dropped.
fn commands(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    let mut pending: Option<String> = None;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            continue;
        }
        let line = line.trim();
        let line = match pending.take() {
            Some(start) => format!("{start} {line}"),
            None if line.starts_with("googlenet ") => line.to_string(),
            None => continue,
        };
        match line.strip_suffix('\\') {
            Some(start) => pending = Some(start.trim_end().to_string()),
            None => out.push(line.split(" # ").next().unwrap().trim().to_string()),
        }
    }
    out
}

fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root.join("docs")) {
        let mut docs: Vec<PathBuf> = dir
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
    }
    files
}

#[test]
fn the_extractor_joins_continuations_and_drops_comments() {
    let text = "text\n```sh\ngoogletest x\ngooglenet train --data d \\\n   --epochs 2   # two\n```\n\
                googlenet outside --fence\n";
    assert_eq!(commands(text), vec!["googlenet train --data d --epochs 2"]);
}

#[test]
fn every_documented_command_parses() {
    let mut failures = Vec::new();
    let mut count = 0;
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        for command in commands(&text) {
            count += 1;
            // The shell's own syntax (redirections, pipes, `&&`) ends the program's arguments.
            let words = command
                .split_whitespace()
                .take_while(|w| !["|", "&&", ";", "<"].contains(w) && !w.contains('>'));
            if let Err(err) = Cli::try_parse_from(words) {
                // A GPU device is checked against the backends this binary was built with; the
                // command itself is right.
                let text = err.to_string();
                let help = matches!(
                    err.kind(),
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
                );
                if !help && !text.contains("this binary was built without the") {
                    failures.push(format!("{}: `{command}`:\n{text}", file.display()));
                }
            }
        }
    }
    assert!(count >= 15, "only {count} documented commands found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
