//! The text form of a schedule (`nnc ir --stage kernels`): slots, buffers
//! with their places, then each kernel with its expression nodes and stores
//! (`sum=`/`max_of=`: a reduction that starts from the identity).

use std::fmt::{self, Display, Formatter, Write};

use super::{BufId, Expr, Kernel, KernelBody, LoopKernel, MatOperand, Place, Schedule, SlotRole, StoreMode, View};
use crate::ir::OpRule;

struct V<'a>(&'a View);

impl Display for V<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self.0.strides.iter().map(|s| s.to_string()).collect();
        write!(f, "<{}>", s.join(","))?;
        if self.0.offset != 0 {
            write!(f, "+{}", self.0.offset)?;
        }
        Ok(())
    }
}

fn dims(d: &[usize]) -> String {
    let s: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    format!("[{}]", s.join(","))
}

fn expr(e: &Expr) -> String {
    match e {
        Expr::Load { buf, view } => format!("load {buf}{}", V(view)),
        Expr::Const(v) => format!("const {v:?}"),
        Expr::Iota(v) => format!("iota {}", V(v)),
        Expr::Random { key, salt, index } => format!("random e{key} salt={salt} {}", V(index)),
        Expr::Unary(u, a) => format!("{} e{a}", u.name()),
        Expr::Binary(b, x, y) => format!("{} e{x}, e{y}", b.name()),
        Expr::Select(c, a, b) => format!("select e{c}, e{a}, e{b}"),
        Expr::Cast(t, a) => format!("cast[{t}] e{a}"),
        Expr::Gather { buf, view, index, stride, dim } => {
            format!("gather {buf}{} + e{index}*{stride} (< {dim})", V(view))
        }
    }
}

fn mat(m: &MatOperand) -> String {
    format!("{}+{}<{},{},{}>", m.buf, m.offset, m.bs, m.rs, m.cs)
}

fn loop_body(f: &mut Formatter<'_>, l: &LoopKernel) -> fmt::Result {
    for (i, n) in l.nodes.iter().enumerate() {
        writeln!(f, "    e{i} = {} : {}", expr(&n.expr), n.dtype)?;
    }
    for s in &l.stores {
        let op = match (s.mode, s.init) {
            (StoreMode::Assign, _) => "=",
            (StoreMode::Add, false) => "+=",
            (StoreMode::Max, false) => "max=",
            (StoreMode::Add, true) => "sum=",
            (StoreMode::Max, true) => "max_of=",
        };
        let mut dst = format!("{}{}", s.buf, V(&s.view));
        if let Some(sc) = &s.scatter {
            let _ = write!(dst, " + e{}*{} (< {})", sc.index, sc.stride, sc.dim);
        }
        writeln!(f, "    {dst} {op} e{}", s.value)?;
    }
    Ok(())
}

impl Display for Kernel {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.body {
            KernelBody::Loop(l) => {
                writeln!(f, "loop {}  ; {}", dims(&l.space), self.label)?;
                loop_body(f, l)
            }
            KernelBody::Gemm(g) => {
                writeln!(f, "gemm {}x[{}x{}]*[{}x{}]  ; {}", g.batch, g.m, g.k, g.k, g.n, self.label)?;
                writeln!(f, "    {} = {} * {}", mat(&g.out), mat(&g.lhs), mat(&g.rhs))?;
                match &g.epilogue {
                    Some(e) => {
                        writeln!(f, "  then loop {}", dims(&e.space))?;
                        loop_body(f, e)
                    }
                    None => Ok(()),
                }
            }
            KernelBody::Conv(c) => {
                let g = &c.geom;
                let d = |v: [usize; 3]| dims(&v);
                let how = if g.direct { " direct" } else { "" };
                writeln!(f, "conv {:?}{how} x{} groups={}  ; {}", g.role, g.batch, g.groups, self.label)?;
                let at = |(b, o): (BufId, i64)| if o == 0 { format!("{b}") } else { format!("{b}+{o}") };
                writeln!(
                    f,
                    "    x={} {}x{} w={} {} y={} {}x{} stride={} pad={} dil={} (desc const @{})",
                    at(c.x),
                    d(g.image),
                    g.cin,
                    at(c.w),
                    d(g.window),
                    at(c.y),
                    d(g.out),
                    g.cout,
                    d(g.stride),
                    d(g.pad),
                    d(g.dilation),
                    c.desc
                )
            }
        }
    }
}

impl Display for Schedule {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        Annotated(self, &|_| String::new()).fmt(f)
    }
}

/// The text form with a note line after each kernel (`nnc ir --stage
/// kernels` names the source lines it computes there); an empty note adds
/// nothing.
pub struct Annotated<'a>(pub &'a Schedule, pub &'a dyn Fn(&Kernel) -> String);

impl Display for Annotated<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Annotated(sch, note) = self;
        for (i, s) in sch.slots.iter().enumerate() {
            let role = match s.role {
                SlotRole::Input => "input",
                SlotRole::Output => "output",
                SlotRole::InOut => "inout",
            };
            writeln!(f, "slot s{i} {role} {:?} : {}{}", s.name, s.dtype, dims(&s.shape))?;
        }
        for (i, b) in sch.buffers.iter().enumerate() {
            let place = match b.place {
                Place::Slot(s) => format!("slot s{s}"),
                Place::Arena(o) => format!("arena @{o}"),
                Place::Const(o) => format!("const @{o}"),
            };
            let node = b.node.map(|n| format!(" ({n})")).unwrap_or_default();
            writeln!(f, "buffer b{i} : {}{} {place}{node}", b.dtype, dims(&b.shape))?;
        }
        for (i, k) in sch.kernels.iter().enumerate() {
            let (n, text) = (note(k), k.to_string());
            match text.split_once('\n') {
                Some((head, body)) if !n.is_empty() => write!(f, "k{i} {head}\n    ; {n}\n{body}")?,
                _ => write!(f, "k{i} {text}")?,
            }
        }
        writeln!(f, "arena {} bytes, constants {} bytes", sch.arena_bytes, sch.consts.len())
    }
}
