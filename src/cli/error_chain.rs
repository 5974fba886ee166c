//! An error and its causes as one line, each cause once.

/// The message of `err` followed by each cause that it does not already show. Many of the error
/// types show their cause in their own message (`#[error("reading training data: {0}")]`) and
/// also return it as `source()`, which `{:#}` would print a second time.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}
