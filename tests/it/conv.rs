//! The convolution family (`ir::ops::conv`): every combination of stride,
//! padding, dilation and groups on odd sizes, for each of the three roles
//! built directly (so each role's own VJP, the other two, is checked too),
//! against finite differences in f64 and compiled against the interpreter.

use crate::codegen_ops::check_with;
use crate::ir_util::{Arg, Rng, declare, grad_check};
use nnc::ir::{Conv, ConvAttrs, ConvRole, Graph, IrError, NodeId, Op};

/// One geometry: image spatial sizes, window, channels in and out.
#[derive(Clone, Debug)]
struct Case {
    batch: usize,
    image: Vec<usize>,
    window: Vec<usize>,
    cin: usize,
    cout: usize,
    attrs: ConvAttrs,
}

impl Case {
    fn x(&self) -> Vec<usize> {
        [&[self.batch][..], &self.image, &[self.cin]].concat()
    }
    fn w(&self) -> Vec<usize> {
        [&self.window[..], &[self.cin / self.attrs.groups, self.cout]].concat()
    }
    /// The forward output's shape, by the IR's rule.
    fn y(&self) -> Vec<usize> {
        let mut g = Graph::new();
        let x = g.input("x", nnc::ir::InputRole::Data, nnc::ir::Type::f32(self.x())).expect("x");
        let w = g.input("w", nnc::ir::InputRole::Data, nnc::ir::Type::f32(self.w())).expect("w");
        let y = g.conv(x, w, self.attrs.clone()).unwrap_or_else(|e| panic!("{self:?}: {e}"));
        g.ty(y).expect("type").shape
    }
    fn op(&self, role: ConvRole) -> Op {
        Op::Conv(Conv { role, attrs: self.attrs.clone(), image: self.image.clone(), window: self.window.clone() })
    }
    /// The role's operands, in its input order.
    fn operands(&self, role: ConvRole, rng: &mut Rng) -> Vec<Arg> {
        let arg = |rng: &mut Rng, name: &str, shape: Vec<usize>| Arg::f32(rng, name, &shape, -1.0, 1.0);
        match role {
            ConvRole::Forward => vec![arg(rng, "x", self.x()), arg(rng, "w", self.w())],
            ConvRole::InputGrad => vec![arg(rng, "dy", self.y()), arg(rng, "w", self.w())],
            ConvRole::FilterGrad => vec![arg(rng, "x", self.x()), arg(rng, "dy", self.y())],
        }
    }
}

const ROLES: [ConvRole; 3] = [ConvRole::Forward, ConvRole::InputGrad, ConvRole::FilterGrad];

fn check_case(c: &Case, rng: &mut Rng) {
    for role in ROLES {
        let args = c.operands(role, rng);
        let op = c.op(role);
        let build = move |g: &mut Graph, x: &[NodeId]| -> Result<NodeId, IrError> { g.insert(op.clone(), x) };
        grad_check(&args, &build);
        let mut g = Graph::unfolded();
        let ids = declare(&mut g, &args);
        let y = build(&mut g, &ids).expect("builds");
        g.set_output("y", y).expect("output");
        if let Err(e) = check_with(&g, 5, false, 1e-5, 1e-5) {
            panic!("{role:?} {c:?}: {e}");
        }
    }
}

/// 2-D, 5 x 7 images (odd, and not a multiple of the strides), 3 x 2
/// windows; groups 1, 2 and depthwise (one channel per group).
#[test]
fn every_stride_padding_dilation_and_groups_in_2d() {
    let mut rng = Rng(17);
    for stride in [[1, 1], [2, 1], [1, 3]] {
        for pad in [0, 1] {
            for dilation in [1, 2] {
                for (cin, cout, groups) in [(3, 2, 1), (4, 6, 2), (3, 3, 3)] {
                    let attrs = ConvAttrs {
                        stride: stride.to_vec(),
                        pad: vec![[pad, 1 - pad], [pad, pad]],
                        dilation: vec![dilation, 1],
                        groups,
                    };
                    let c = Case { batch: 2, image: vec![5, 7], window: vec![3, 2], cin, cout, attrs };
                    check_case(&c, &mut rng);
                }
            }
        }
    }
}

/// 1-D (sequences) and 3-D (volumes), and the 1 x 1 window, which the
/// driver runs as a plain product.
#[test]
fn one_and_three_spatial_dims_and_pointwise() {
    let mut rng = Rng(23);
    let plain = |n: usize| ConvAttrs::plain(n);
    let cases = [
        Case {
            batch: 3,
            image: vec![9],
            window: vec![3],
            cin: 2,
            cout: 3,
            attrs: ConvAttrs { dilation: vec![2], ..plain(1) },
        },
        Case {
            batch: 1,
            image: vec![3, 4, 5],
            window: vec![2, 2, 3],
            cin: 2,
            cout: 2,
            attrs: ConvAttrs { stride: vec![1, 2, 1], pad: vec![[1, 0], [0, 0], [1, 1]], ..plain(3) },
        },
        Case { batch: 2, image: vec![3, 5], window: vec![1, 1], cin: 4, cout: 3, attrs: plain(2) },
        Case {
            batch: 2,
            image: vec![3, 5],
            window: vec![1, 1],
            cin: 4,
            cout: 6,
            attrs: ConvAttrs { groups: 2, ..plain(2) },
        },
    ];
    for c in &cases {
        check_case(c, &mut rng);
    }
}

/// Compiled against the interpreter on random geometries, at sizes where
/// the driver tiles (more pixels than a tile, several tiles per image).
#[test]
fn random_geometries_compile_to_the_interpreters_values() {
    let mut rng = Rng(99);
    // Several tiles of pixels for every role (the driver's tile is at most
    // 1024 pixels), first of all.
    let attrs = ConvAttrs { pad: vec![[1, 1], [1, 1]], ..ConvAttrs::plain(2) };
    let many = Case { batch: 2, image: vec![45, 50], window: vec![3, 3], cin: 4, cout: 5, attrs };
    // 64 channels per group: the driver's input gradient at stride 1 is then
    // the forward path on a flipped kernel.
    let attrs = ConvAttrs { pad: vec![[1, 0], [1, 1]], dilation: vec![1, 2], groups: 2, ..ConvAttrs::plain(2) };
    let wide = Case { batch: 2, image: vec![6, 7], window: vec![3, 2], cin: 128, cout: 6, attrs };
    for role in ROLES {
        compiled_matches(&many, role, &mut rng);
        compiled_matches(&wide, role, &mut rng);
    }
    for _ in 0..12 {
        let pick = |rng: &mut Rng, lo: usize, hi: usize| lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize;
        let groups = [1, 1, 2, 4][pick(&mut rng, 0, 3)];
        let cin = groups * pick(&mut rng, 1, 5);
        let cout = groups * pick(&mut rng, 1, 6);
        let window = vec![pick(&mut rng, 1, 4), pick(&mut rng, 1, 4)];
        let attrs = ConvAttrs {
            stride: vec![pick(&mut rng, 1, 2), pick(&mut rng, 1, 3)],
            pad: vec![[pick(&mut rng, 0, 2), pick(&mut rng, 0, 1)], [pick(&mut rng, 0, 1), pick(&mut rng, 0, 2)]],
            dilation: vec![pick(&mut rng, 1, 2), 1],
            groups,
        };
        let image = vec![pick(&mut rng, 9, 40), pick(&mut rng, 9, 40)];
        let c = Case { batch: pick(&mut rng, 1, 3), image, window, cin, cout, attrs };
        for role in ROLES {
            compiled_matches(&c, role, &mut rng);
        }
    }
}

/// The role of `c`, compiled, against the interpreter on random operands.
fn compiled_matches(c: &Case, role: ConvRole, rng: &mut Rng) {
    let args = c.operands(role, rng);
    let mut g = Graph::unfolded();
    let ids = declare(&mut g, &args);
    let y = g.insert(c.op(role), &ids).expect("builds");
    g.set_output("y", y).expect("output");
    if let Err(e) = check_with(&g, 3, false, 1e-4, 1e-4) {
        panic!("{role:?} {c:?}: {e}");
    }
}

/// Narrow convolutions (few input channels, output channels per group in
/// multiples of 8) take the driver's direct kernels: each case asserts
/// which roles do, so a change in the rule cannot leave them untested, and
/// compares them with the interpreter on odd sizes, with rows of output
/// pixels and of kernel rows that are not multiples of the register tiles.
#[test]
fn narrow_convolutions_take_the_direct_kernels() {
    use ConvRole::{FilterGrad, Forward, InputGrad};
    let mut rng = Rng(5);
    let attrs = |stride: &[usize], pad: &[[usize; 2]], dilation: &[usize], groups| ConvAttrs {
        stride: stride.to_vec(),
        pad: pad.to_vec(),
        dilation: dilation.to_vec(),
        groups,
    };
    let case = |batch, image: &[usize], window: &[usize], cin, cout, attrs| Case {
        batch,
        image: image.to_vec(),
        window: window.to_vec(),
        cin,
        cout,
        attrs,
    };
    let cases = [
        // A first layer: one channel in, 32 out (4 vectors by 3 pixels).
        (case(2, &[13, 11], &[3, 3], 1, 32, attrs(&[1, 1], &[[1, 1], [1, 1]], &[1, 1], 1)), &[Forward, FilterGrad][..]),
        (case(3, &[9, 17], &[5, 3], 2, 16, attrs(&[2, 1], &[[2, 1], [0, 3]], &[1, 2], 1)), &[Forward, FilterGrad]),
        // Groups, and 3 vectors of output channels per group.
        (case(2, &[7, 10], &[2, 3], 4, 48, attrs(&[1, 2], &[[0, 1], [1, 1]], &[1, 1], 2)), &[Forward, FilterGrad]),
        // 40 channels: a tile of 4 vectors, then one of 1.
        (case(2, &[29], &[5], 1, 40, attrs(&[1], &[[3, 2]], &[2], 1)), &[Forward, FilterGrad]),
        (
            case(1, &[3, 5, 7], &[2, 2, 3], 1, 8, attrs(&[1, 2, 1], &[[1, 0], [0, 1], [1, 1]], &[1, 1, 1], 1)),
            &[Forward, FilterGrad],
        ),
        // The input gradient as a forward pass of the flipped kernel: input
        // channels per group in multiples of 8, stride 1.
        (case(2, &[8, 11], &[3, 3], 16, 2, attrs(&[1, 1], &[[1, 1], [2, 0]], &[1, 2], 1)), &[InputGrad]),
        (case(2, &[6, 9], &[3, 2], 16, 4, attrs(&[1, 1], &[[0, 2], [1, 0]], &[1, 1], 2)), &[InputGrad]),
    ];
    for (c, direct) in &cases {
        for role in ROLES {
            let args = c.operands(role, &mut rng);
            let mut g = Graph::unfolded();
            let ids = declare(&mut g, &args);
            let y = g.insert(c.op(role), &ids).expect("builds");
            g.set_output("y", y).expect("output");
            let step = nnc::runtime::CompiledStep::compile(&g).expect("compiles");
            let took = step.schedule().kernels.iter().any(|k| match &k.body {
                nnc::schedule::KernelBody::Conv(k) => k.geom.direct,
                _ => false,
            });
            assert_eq!(took, direct.contains(&role), "{role:?} {c:?}\n{}", step.schedule());
            if let Err(e) = check_with(&g, 11, false, 1e-4, 1e-4) {
                panic!("{role:?} {c:?}: {e}");
            }
        }
    }
}

/// Kernel gradients big enough to split by images, each block into its own
/// copy, summed after (`ConvGeom::parts`): batches that are not a multiple
/// of the blocks, through the products and the direct kernels.
#[test]
fn kernel_gradients_in_partial_copies_match_the_interpreter() {
    let mut rng = Rng(41);
    let attrs = || ConvAttrs { pad: vec![[1, 1], [1, 1]], ..ConvAttrs::plain(2) };
    let cases = [
        // 20 output channels: the products; 10 images in 5 copies.
        (Case { batch: 10, image: vec![15, 13], window: vec![3, 3], cin: 12, cout: 20, attrs: attrs() }, false),
        // One channel in, 32 out: the direct kernels; 9 images in 5 copies.
        (Case { batch: 9, image: vec![33, 31], window: vec![3, 3], cin: 1, cout: 32, attrs: attrs() }, true),
    ];
    for (c, direct) in &cases {
        let args = c.operands(ConvRole::FilterGrad, &mut rng);
        let mut g = Graph::unfolded();
        let ids = declare(&mut g, &args);
        let y = g.insert(c.op(ConvRole::FilterGrad), &ids).expect("builds");
        g.set_output("y", y).expect("output");
        let step = nnc::runtime::CompiledStep::compile(&g).expect("compiles");
        let geom = step.schedule().kernels.iter().find_map(|k| match &k.body {
            nnc::schedule::KernelBody::Conv(k) => Some(k.geom.clone()),
            _ => None,
        });
        let geom = geom.expect("a conv kernel");
        assert_eq!((geom.parts, geom.direct), (5, *direct), "{c:?}\n{}", step.schedule());
        // Each sum has batch x pixels terms, accumulated in f32 (the
        // interpreter's in f64): codegen's tolerance for sums of n terms.
        let terms = c.batch * c.image.iter().product::<usize>();
        if let Err(e) = check_with(&g, 13, false, 1e-6 * terms as f64, 1e-5) {
            panic!("{c:?}: {e}");
        }
    }
}
