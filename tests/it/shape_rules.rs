//! The checker and lowering apply one shape rule per builtin
//! (`src/ir/dims.rs`); these tests walk every small case through both, from
//! source, so that the glue around each rule cannot drift either: what
//! `nnc check` accepts with a type is what lowering builds with that shape,
//! and what lowering rejects the checker rejects when it knows the sizes.

use nnc::ir::DType;

/// The checker's verdict on `fn f(x: f32[n]) -> f32[len] { body }`.
fn checks(n: usize, len: Option<usize>, body: &str) -> Result<(), String> {
    let ret = len.map_or("f32[M]".to_string(), |l| format!("f32[{l}]"));
    let src = format!("fn f(x: f32[{n}]) -> {ret} {{\n    {body}\n}}\n");
    let out = nnc::check_source("rules.nn", &src, &[]);
    match out.diags.first() {
        None => Ok(()),
        Some(d) => Err(d.message.clone()),
    }
}

/// Lowering's shape for `body` on `x: f32[n]`.
fn lowers(n: usize, body: &str) -> Result<Vec<usize>, String> {
    let (mut program, diags) = nnc::resolve::load_str("rules.nn", "");
    assert!(diags.is_empty());
    let t = nnc::lower::trace(&mut program, body, &[("x", DType::F32, vec![n])]).map_err(|d| d.message)?;
    let out = t.graph.outputs().first().map(|(_, id)| *id).expect("an output");
    Ok(t.graph.node(out).ty.shape.clone())
}

/// `x[a:b:s]` for every bound in -6..=6 (and none), on dims of 1 to 5.
#[test]
fn slices_agree() {
    let bounds: Vec<Option<i64>> = std::iter::once(None).chain((-6..=6).map(Some)).collect();
    let show = |b: Option<i64>| b.map_or(String::new(), |v| v.to_string());
    let mut cases = 0;
    for n in 1..=5 {
        for &a in &bounds {
            for &b in &bounds {
                for s in 1..=3 {
                    let body = format!("x[{}:{}:{s}]", show(a), show(b));
                    cases += 1;
                    match lowers(n, &body) {
                        Ok(shape) => {
                            let r = checks(n, Some(shape[0]), &body);
                            assert!(r.is_ok(), "n={n} {body}: lowered to {shape:?}, the checker says {r:?}");
                        }
                        Err(m) => {
                            let r = checks(n, None, &body);
                            assert!(
                                r.as_ref().is_err_and(|e| e.contains("slice")),
                                "n={n} {body}: lowering says {m:?}, the checker {r:?}"
                            );
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 5 * 14 * 14 * 3);
}

/// `x.reshape(target)` for small targets with and without `-1`.
#[test]
fn reshapes_agree() {
    let entries = [-3, -1, 0, 1, 2, 3, 4, 6];
    for n in [1, 6, 12] {
        for &p in &entries {
            for &q in &entries {
                let body = format!("x.reshape([{p}, {q}])");
                match lowers(n, &body) {
                    Ok(shape) => {
                        let ret = format!("f32[{}, {}]", shape[0], shape[1]);
                        let src = format!("fn f(x: f32[{n}]) -> {ret} {{\n    {body}\n}}\n");
                        let out = nnc::check_source("rules.nn", &src, &[]);
                        assert!(out.diags.is_empty(), "n={n} {body}: lowered to {shape:?}, checker: {:?}", out.diags);
                    }
                    Err(m) => {
                        let r = checks(n, None, &body);
                        assert!(r.is_err(), "n={n} {body}: lowering says {m:?}, the checker accepts it");
                    }
                }
            }
        }
    }
}

/// A slice the checker cannot bound (`:5` of a generic `N`) is checked by
/// the same rule once `N` is known; it used to be clamped, so the graph's
/// length (3) differed from the type the checker had proved (5).
#[test]
fn a_slice_past_a_symbolic_dim_fails_in_lowering() {
    let src = "fn head(x: f32[N]) -> f32[5] {\n    x[:5]\n}\n";
    assert!(nnc::check_source("rules.nn", src, &[]).diags.is_empty());
    let e = lowers(3, "x[:5]").unwrap_err();
    assert!(e.contains("out of range for a dim of size 3"), "{e}");
}

/// A residual block whose shortcut is projected only when the widths
/// differ: the branches are `f32[B, cin]` and `f32[B, cout]`, equal
/// wherever the first runs.
#[test]
fn a_branch_under_an_equality_of_dims_unifies() {
    let block = |cond: &str, then: &str, els: &str| {
        format!(
            "use std.nn.Linear\n\
             model Res(cin: int, cout: int) {{\n    proj: Linear(cin, cout)\n    \
             fn (x: f32[B, cin]) -> f32[B, cout] {{\n        if {cond} {{ {then} }} else {{ {els} }}\n    }}\n}}\n"
        )
    };
    let ok = |src: String| {
        let out = nnc::check_source("res.nn", &src, &[]);
        assert!(out.diags.is_empty(), "{src}\n{:?}", out.diags.iter().map(|d| &d.message).collect::<Vec<_>>());
    };
    ok(block("cin == cout", "x", "proj(x)"));
    ok(block("cout == cin", "x", "proj(x)"));
    ok(block("cin != cout", "proj(x)", "x"));
    // Where the shortcut is taken the widths differ: the `if` is
    // `f32[B, cin]`, which is not the declared result.
    let src = block("cin != cout", "x", "proj(x)");
    let out = nnc::check_source("res.nn", &src, &[]);
    assert!(out.diags.iter().any(|d| d.message.contains("f32[B, cin]")), "{src}\n{:?}", out.diags);
    // Equal widths do not make the ranks agree.
    let src = block("cin == cout", "proj(x)", "x.reshape([B, cin, 1])");
    let out = nnc::check_source("res.nn", &src, &[]);
    assert!(out.diags.iter().any(|d| d.message.contains("branches of this `if` differ")), "{src}");
}

/// ... and lowers to the branch the sizes pick.
#[test]
fn the_equality_picks_the_branch_in_lowering() {
    let src = "use std.nn.Linear\nmodel Res(cin: int, cout: int) {\n    proj: Linear(cin, cout)\n    \
               fn (x: f32[B, cin]) -> f32[B, cout] {\n        if cin == cout { x } else { proj(x) }\n    }\n}\n";
    for (cin, cout) in [(4, 4), (4, 6)] {
        let (mut program, diags) = nnc::resolve::load_str("res.nn", src);
        assert!(diags.is_empty());
        let t = nnc::lower::trace(&mut program, &format!("Res({cin}, {cout})(x)"), &[("x", DType::F32, vec![2, cin])])
            .unwrap_or_else(|d| panic!("{}", d.message));
        let out = t.graph.outputs()[0].1;
        assert_eq!(t.graph.node(out).ty.shape, vec![2, cout]);
    }
}
