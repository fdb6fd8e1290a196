//! One way to walk an error's causes, so every message that shows a chain
//! shows it the same way.

use std::error::Error;

/// `e` followed by each of its causes, outermost first.
pub fn causes<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(e), |c: &&'a (dyn Error + 'static)| (*c).source())
}

/// `e` and its causes, `: `-separated. A cause whose text already ends the
/// message so far (a wrapper that repeats its source) is not repeated.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut out = String::new();
    for cause in causes(e) {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// True when `e` or one of its causes is a `T` for which `test` holds.
pub fn any_cause<T: Error + 'static>(e: &(dyn Error + 'static), test: impl Fn(&T) -> bool) -> bool {
    causes(e).any(|c| c.downcast_ref::<T>().is_some_and(&test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("repeating: {0}")]
    struct Repeating(#[source] std::io::Error);

    #[test]
    fn the_chain_lists_every_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(chain(&Outer(io())), "outer: refused");
        assert_eq!(chain(&Repeating(io())), "repeating: refused");
        assert!(any_cause(&Outer(io()), |e: &std::io::Error| {
            e.kind() == std::io::ErrorKind::ConnectionRefused
        }));
        assert!(!any_cause(&Outer(io()), |e: &std::io::Error| {
            e.kind() == std::io::ErrorKind::TimedOut
        }));
    }
}
