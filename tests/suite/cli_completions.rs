//! Shell completions and the manual page come from the command line's own definition.

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_name_every_subcommand_and_their_options() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        for word in [
            "classify",
            "eval",
            "train",
            "weights",
            "crops",
            "transform-input",
        ] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
}

#[test]
fn the_manual_page_is_roff_with_every_subcommand() {
    let page = run(&["man"]);
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "{}",
        &page[..80.min(page.len())]
    );
    assert!(page.contains(".TH googlenet 1"), "title line");
    for word in ["classify", "eval", "train", "export", "weights"] {
        assert!(page.contains(word), "man page lacks {word}");
    }
}
