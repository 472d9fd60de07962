//! Argument binding: which parameter each argument of a call fills. One
//! rule for every call (functions, models, optimizers, builtins), shared
//! by `check`, which reports each [`BindError`] as a diagnostic, and
//! `lower`, which runs only on programs that bound.

/// What is wrong with a call's arguments; indices are into the call's
/// arguments (`arg`) or the callee's parameters (`param`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindError {
    /// A positional argument after the first named one.
    AfterNamed { arg: usize, first_named: usize },
    /// A name no parameter has.
    Unknown { arg: usize },
    /// Parameter `param` given a second time.
    Twice { arg: usize, first: usize, param: usize },
    /// Positional arguments beyond the parameters, all of them.
    TooMany { args: Vec<usize> },
    /// A required parameter not given.
    Missing { param: usize },
}

/// Binds `args` (each one's name, if named) to `params` (name, required).
/// Returns, per parameter, the argument that fills it, and every error in
/// the order a reader meets them: argument by argument, then the extra
/// positional ones, then the missing parameters.
pub fn bind(params: &[(&str, bool)], args: &[Option<&str>]) -> (Vec<Option<usize>>, Vec<BindError>) {
    let mut slots: Vec<Option<usize>> = vec![None; params.len()];
    let mut errors = Vec::new();
    let mut extra = Vec::new();
    let mut next = 0;
    let mut first_named: Option<usize> = None;
    for (arg, name) in args.iter().enumerate() {
        let slot = match (name, first_named) {
            (None, Some(first_named)) => {
                errors.push(BindError::AfterNamed { arg, first_named });
                continue;
            }
            (None, None) if next >= params.len() => {
                extra.push(arg);
                continue;
            }
            (None, None) => {
                next += 1;
                next - 1
            }
            (Some(n), _) => {
                first_named.get_or_insert(arg);
                match params.iter().position(|(p, _)| p == n) {
                    Some(i) => i,
                    None => {
                        errors.push(BindError::Unknown { arg });
                        continue;
                    }
                }
            }
        };
        match slots[slot] {
            Some(first) => errors.push(BindError::Twice { arg, first, param: slot }),
            None => slots[slot] = Some(arg),
        }
    }
    if !extra.is_empty() {
        errors.push(BindError::TooMany { args: extra });
    }
    let missing = params.iter().zip(&slots).enumerate().filter(|(_, ((_, req), s))| *req && s.is_none());
    errors.extend(missing.map(|(param, _)| BindError::Missing { param }));
    (slots, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[(&str, bool)] = &[("x", true), ("axis", false), ("keepdim", false)];

    #[test]
    fn positional_then_named() {
        let (slots, errors) = bind(PARAMS, &[None, Some("keepdim")]);
        assert_eq!(slots, vec![Some(0), None, Some(1)]);
        assert!(errors.is_empty());
    }

    #[test]
    fn every_mistake_is_reported_in_reading_order() {
        let args = [Some("axis"), None, Some("nope"), Some("axis")];
        let (_, errors) = bind(PARAMS, &args);
        assert_eq!(
            errors,
            vec![
                BindError::AfterNamed { arg: 1, first_named: 0 },
                BindError::Unknown { arg: 2 },
                BindError::Twice { arg: 3, first: 0, param: 1 },
                BindError::Missing { param: 0 },
            ]
        );
        let (_, errors) = bind(PARAMS, &[None, None, None, None, None]);
        assert_eq!(errors, vec![BindError::TooMany { args: vec![3, 4] }]);
    }
}
