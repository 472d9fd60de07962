//! Pairs → AST. The grammar is `grammar/nn.pest`; precedence is applied here
//! with a Pratt parser so the grammar stays flat.

use super::ast::*;
use super::errors::syntax_error;
use crate::diag::Diag;
use crate::span::{FileId, Span};
use pest::Parser;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::sync::LazyLock;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/nn.pest"]
pub struct NnParser;

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::pipe, Assoc::Left))
        .op(Op::infix(Rule::or, Assoc::Left))
        .op(Op::infix(Rule::and, Assoc::Left))
        .op(Op::infix(Rule::eq, Assoc::Left)
            | Op::infix(Rule::ne, Assoc::Left)
            | Op::infix(Rule::lt, Assoc::Left)
            | Op::infix(Rule::le, Assoc::Left)
            | Op::infix(Rule::gt, Assoc::Left)
            | Op::infix(Rule::ge, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left)
            | Op::infix(Rule::div, Assoc::Left)
            | Op::infix(Rule::rem, Assoc::Left)
            | Op::infix(Rule::matmul, Assoc::Left))
        .op(Op::prefix(Rule::neg) | Op::prefix(Rule::not))
        .op(Op::infix(Rule::pow, Assoc::Right))
});

/// Parse one file. A syntax error is one diagnostic: pest stops at the first.
pub fn parse(file: FileId, text: &str) -> Result<Module, Diag> {
    pest::set_error_detail(true);
    let mut pairs = NnParser::parse(Rule::file, text).map_err(|e| syntax_error(file, text, e))?;
    let root = pairs.next().ok_or_else(|| Diag::error("empty parse"))?;
    let cx = Cx { file, error: Default::default() };
    let items = root.into_inner().filter(|p| p.as_rule() != Rule::EOI).map(|p| cx.item(p)).collect();
    match cx.error.into_inner() {
        Some(d) => Err(d),
        None => Ok(Module { items }),
    }
}

/// Parse a single expression (tests and tools lower snippets of code).
pub fn parse_expr(file: FileId, text: &str) -> Result<Expr, Diag> {
    let mut pairs = NnParser::parse(Rule::expr_only, text).map_err(|e| syntax_error(file, text, e))?;
    let expr = pairs.next().and_then(|p| p.into_inner().next()).ok_or_else(|| Diag::error("empty expression"))?;
    let cx = Cx { file, error: Default::default() };
    let e = cx.expr(expr);
    match cx.error.into_inner() {
        Some(d) => Err(d),
        None => Ok(e),
    }
}

struct Cx {
    file: FileId,
    /// The first error found while building the AST (an int literal that
    /// does not fit); the grammar accepted the text.
    error: std::cell::RefCell<Option<Diag>>,
}

impl Cx {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    /// An int literal's value; one that does not fit `i64` is an error.
    fn int(&self, p: &Pair<Rule>) -> i64 {
        p.as_str().parse().unwrap_or_else(|_| {
            let mut first = self.error.borrow_mut();
            if first.is_none() {
                *first = Some(
                    Diag::error("integer literal too large")
                        .at(self.span(p), format!("the largest int is {}", i64::MAX))
                        .help("write a float (`1e20`) for a large real number"),
                );
            }
            0
        })
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        Ident { name: p.as_str().to_string(), span: self.span(&p) }
    }

    fn item(&self, p: Pair<Rule>) -> Item {
        match p.as_rule() {
            Rule::use_decl => Item::Use(self.use_decl(p)),
            Rule::const_decl => Item::Const(self.const_decl(p)),
            Rule::fn_decl => Item::Fn(self.fn_decl(p)),
            Rule::model_decl => Item::Model(self.model_decl(p)),
            Rule::optimizer_decl => Item::Optimizer(self.optimizer_decl(p)),
            Rule::dataset_decl => Item::Dataset(self.dataset_decl(p)),
            _ => Item::Experiment(self.experiment_decl(p)),
        }
    }

    fn use_decl(&self, p: Pair<Rule>) -> Use {
        let span = self.span(&p);
        let mut inner = p.into_inner();
        let mref = inner.next().and_then(|m| m.into_inner().next());
        let module = match mref {
            Some(m) if m.as_rule() == Rule::string => {
                let s = m.as_str();
                ModuleRef::File(s[1..s.len() - 1].to_string(), self.span(&m))
            }
            Some(m) => ModuleRef::Dotted(m.into_inner().map(|i| self.ident(i)).collect()),
            None => ModuleRef::Dotted(Vec::new()),
        };
        let names = inner.next().map(|g| {
            g.into_inner()
                .map(|n| {
                    let mut it = n.into_inner().map(|i| self.ident(i));
                    let name = it.next().unwrap_or_else(|| Ident { name: String::new(), span });
                    UseName { name, alias: it.next() }
                })
                .collect()
        });
        Use { module, names, span }
    }

    fn const_decl(&self, p: Pair<Rule>) -> Const {
        let span = self.span(&p);
        let mut name = None;
        let mut ty = None;
        let mut value = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => name = Some(self.ident(c)),
                Rule::ty => ty = Some(self.ty(c)),
                Rule::sweep => {
                    let s = self.span(&c);
                    value = Some(ConstValue::Sweep(c.into_inner().map(|e| self.expr(e)).collect(), s));
                }
                _ => value = Some(ConstValue::Expr(self.expr(c))),
            }
        }
        Const {
            name: name.unwrap_or_else(|| self.missing(span)),
            ty,
            value: value.unwrap_or_else(|| ConstValue::Expr(self.missing_expr(span))),
            span,
        }
    }

    fn missing(&self, span: Span) -> Ident {
        Ident { name: String::new(), span }
    }

    fn missing_expr(&self, span: Span) -> Expr {
        Expr { kind: ExprKind::Int(0), span }
    }

    fn ty(&self, p: Pair<Rule>) -> Type {
        let mut span = self.span(&p);
        let mut parts = p.into_inner();
        let Some(inner) = parts.next() else {
            return Type { kind: TypeKind::Float, classes: None, span };
        };
        // Pest's span of `ty` ends after the whitespace it skipped looking
        // for `classes`: end the type where its last token ends.
        let last = parts.next();
        span.end = last.as_ref().map_or(self.span(&inner).end, |c| self.span(c).end);
        let classes =
            last.and_then(|c| c.into_inner().find(|d| d.as_rule() == Rule::dim_expr)).map(|d| self.dim_expr(d));
        let kind = match inner.as_rule() {
            Rule::tensor_ty => {
                let mut it = inner.into_inner();
                let dtype = it.next().and_then(|d| DType::from_name(d.as_str())).unwrap_or(DType::F32);
                let shape = it.next().map(|s| s.into_inner().map(|i| self.shape_item(i)).collect());
                TypeKind::Tensor { dtype, shape: shape.unwrap_or_default() }
            }
            _ => match inner.as_str() {
                "int" => TypeKind::Int,
                "float" => TypeKind::Float,
                "dims" => TypeKind::Dims,
                "init" => TypeKind::Init,
                other => TypeKind::Tensor { dtype: DType::from_name(other).unwrap_or(DType::F32), shape: vec![] },
            },
        };
        Type { kind, classes, span }
    }

    fn shape_item(&self, p: Pair<Rule>) -> ShapeItem {
        let span = self.span(&p);
        let Some(inner) = p.into_inner().next() else {
            return ShapeItem::Rest(None, span);
        };
        match inner.as_rule() {
            Rule::rest => ShapeItem::Rest(inner.into_inner().next().map(|i| self.ident(i)), span),
            _ => ShapeItem::Dim(self.dim_expr(inner)),
        }
    }

    /// `a * b + c`: left to right with `*` and `/` binding tighter.
    fn dim_expr(&self, p: Pair<Rule>) -> DimExpr {
        let mut terms = Vec::new();
        let mut ops = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::dim_op => ops.push(match c.as_str() {
                    "+" => DimOp::Add,
                    "-" => DimOp::Sub,
                    "*" => DimOp::Mul,
                    _ => DimOp::Div,
                }),
                _ => terms.push(self.dim_term(c)),
            }
        }
        fold_dims(terms, ops)
    }

    fn dim_term(&self, p: Pair<Rule>) -> DimExpr {
        let span = self.span(&p);
        match p.into_inner().next() {
            Some(c) if c.as_rule() == Rule::int => DimExpr::Int(self.int(&c), span),
            Some(c) if c.as_rule() == Rule::ident => DimExpr::Name(self.ident(c)),
            Some(c) => self.dim_expr(c),
            None => DimExpr::Int(0, span),
        }
    }

    fn params(&self, p: Pair<Rule>) -> Vec<Param> {
        p.into_inner()
            .map(|param| {
                let mut it = param.into_inner();
                let name = it.next().map(|i| self.ident(i));
                let mut ty = None;
                let mut default = None;
                for c in it {
                    match c.as_rule() {
                        Rule::ty => ty = Some(self.ty(c)),
                        _ => default = Some(self.expr(c)),
                    }
                }
                Param { name: name.unwrap_or_else(|| self.missing(Span::new(self.file, 0, 0))), ty, default }
            })
            .collect()
    }

    fn fn_decl(&self, p: Pair<Rule>) -> FnDecl {
        let span = self.span(&p);
        let mut f = FnDecl { name: None, params: vec![], ret: None, body: self.empty_block(span), span };
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => f.name = Some(self.ident(c)),
                Rule::params => f.params = self.params(c),
                Rule::ret_ty => f.ret = c.into_inner().next().map(|t| self.ty(t)),
                _ => f.body = self.block(c),
            }
        }
        f
    }

    fn empty_block(&self, span: Span) -> Block {
        Block { stmts: vec![], tail: Box::new(self.missing_expr(span)), span }
    }

    fn block(&self, p: Pair<Rule>) -> Block {
        let span = self.span(&p);
        let mut stmts = Vec::new();
        let mut tail = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::let_stmt => {
                    let mut name = None;
                    let mut ty = None;
                    let mut value = None;
                    for d in c.into_inner() {
                        match d.as_rule() {
                            Rule::ident => name = Some(self.ident(d)),
                            Rule::ty => ty = Some(self.ty(d)),
                            _ => value = Some(self.expr(d)),
                        }
                    }
                    stmts.push(Stmt::Let {
                        name: name.unwrap_or_else(|| self.missing(span)),
                        ty,
                        value: value.unwrap_or_else(|| self.missing_expr(span)),
                    });
                }
                Rule::assign_stmt => {
                    let mut it = c.into_inner();
                    let name = it.next().map(|i| self.ident(i)).unwrap_or_else(|| self.missing(span));
                    let value = it.next().map(|e| self.expr(e)).unwrap_or_else(|| self.missing_expr(span));
                    stmts.push(Stmt::Assign { name, value });
                }
                Rule::assert_stmt => {
                    let mut it = c.into_inner().filter(|p| p.as_rule() != Rule::kw_assert);
                    let cond = it.next().map(|e| self.expr(e)).unwrap_or_else(|| self.missing_expr(span));
                    let message = it.next().map(|m| m.as_str().trim_matches('"').to_string());
                    stmts.push(Stmt::Assert { cond, message });
                }
                _ => tail = Some(self.expr(c)),
            }
        }
        Block { stmts, tail: Box::new(tail.unwrap_or_else(|| self.missing_expr(span))), span }
    }

    fn model_decl(&self, p: Pair<Rule>) -> ModelDecl {
        let span = self.span(&p);
        let mut m = ModelDecl {
            name: self.missing(span),
            params: vec![],
            fields: vec![],
            forward: None,
            methods: vec![],
            span,
        };
        let mut forwards = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => m.name = self.ident(c),
                Rule::params => m.params = self.params(c),
                Rule::forward_fn => forwards.push(self.fn_decl(c)),
                Rule::fn_decl => m.methods.push(self.fn_decl(c)),
                Rule::buffer_decl => m.fields.push(self.buffer(c)),
                _ => m.fields.push(self.field(c)),
            }
        }
        // A second forward is reported by the checker as a duplicate method.
        let mut forwards = forwards.into_iter();
        m.forward = forwards.next();
        m.methods.extend(forwards);
        m
    }

    fn field(&self, p: Pair<Rule>) -> Field {
        let span = self.span(&p);
        let mut it = p.into_inner();
        let name = it.next().map(|i| self.ident(i)).unwrap_or_else(|| self.missing(span));
        let kind = match it.next() {
            Some(k) if k.as_rule() == Rule::param_field => {
                let (ty, init) = self.param_field(k, span);
                FieldKind::Param { ty, init }
            }
            Some(k) if k.as_rule() == Rule::repeat_field => {
                let mut kt = k.into_inner().map(|e| self.expr(e));
                let model = kt.next().unwrap_or_else(|| self.missing_expr(span));
                let count = kt.next().unwrap_or_else(|| self.missing_expr(span));
                FieldKind::Repeat { model, count }
            }
            Some(k) => {
                FieldKind::Sub(k.into_inner().next().map(|e| self.expr(e)).unwrap_or_else(|| self.missing_expr(span)))
            }
            None => FieldKind::Sub(self.missing_expr(span)),
        };
        Field { name, kind }
    }

    /// `buffer running_mean: f32[c] = zeros`.
    fn buffer(&self, p: Pair<Rule>) -> Field {
        let span = self.span(&p);
        let mut it = p.into_inner().filter(|c| c.as_rule() != Rule::kw_buffer);
        let name = it.next().map(|i| self.ident(i)).unwrap_or_else(|| self.missing(span));
        let (ty, init) = match it.next() {
            Some(k) => self.param_field(k, span),
            None => (Type { kind: TypeKind::Float, classes: None, span }, None),
        };
        Field { name, kind: FieldKind::Buffer { ty, init } }
    }

    /// `f32[dims] = init` of a parameter or a buffer.
    fn param_field(&self, p: Pair<Rule>, span: Span) -> (Type, Option<Expr>) {
        let mut kt = p.into_inner();
        let ty = kt.next().map(|t| self.tensor_ty(t));
        let init = kt.next().map(|e| self.expr(e));
        (ty.unwrap_or(Type { kind: TypeKind::Float, classes: None, span }), init)
    }

    fn tensor_ty(&self, p: Pair<Rule>) -> Type {
        let span = self.span(&p);
        let mut it = p.into_inner();
        let dtype = it.next().and_then(|d| DType::from_name(d.as_str())).unwrap_or(DType::F32);
        let shape = it.next().map(|s| s.into_inner().map(|i| self.shape_item(i)).collect());
        Type { kind: TypeKind::Tensor { dtype, shape: shape.unwrap_or_default() }, classes: None, span }
    }

    fn optimizer_decl(&self, p: Pair<Rule>) -> OptimizerDecl {
        let span = self.span(&p);
        let mut o = OptimizerDecl {
            name: self.missing(span),
            params: vec![],
            states: vec![],
            update: FnDecl { name: None, params: vec![], ret: None, body: self.empty_block(span), span },
            span,
        };
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => o.name = self.ident(c),
                Rule::params => o.params = self.params(c),
                Rule::state_decl => {
                    let mut it = c.into_inner();
                    let name = it.next().map(|i| self.ident(i)).unwrap_or_else(|| self.missing(span));
                    o.states.push(StateDecl { name, init: it.next().map(|e| self.expr(e)) });
                }
                _ => o.update = self.fn_decl(c),
            }
        }
        o
    }

    fn dataset_decl(&self, p: Pair<Rule>) -> DatasetDecl {
        let span = self.span(&p);
        let mut d = DatasetDecl {
            name: self.missing(span),
            source: self.missing_expr(span),
            fields: vec![],
            derived: vec![],
            span,
        };
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => d.name = self.ident(c),
                Rule::data_field => {
                    let mut it = c.into_inner();
                    let name = it.next().map(|i| self.ident(i)).unwrap_or_else(|| self.missing(span));
                    let ty =
                        it.next().map(|t| self.ty(t)).unwrap_or(Type { kind: TypeKind::Float, classes: None, span });
                    d.fields.push(DataField { name, ty });
                }
                Rule::derived => {
                    let mut it = c.into_inner();
                    let name = it.next().map(|i| self.ident(i)).unwrap_or_else(|| self.missing(span));
                    let e = it.next().map(|e| self.expr(e)).unwrap_or_else(|| self.missing_expr(span));
                    d.derived.push((name, e));
                }
                _ => d.source = self.expr(c),
            }
        }
        d
    }

    fn experiment_decl(&self, p: Pair<Rule>) -> ExperimentDecl {
        let span = self.span(&p);
        let mut e = ExperimentDecl { name: self.missing(span), settings: vec![], span };
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => e.name = self.ident(c),
                _ => e.settings.push(self.setting(c)),
            }
        }
        e
    }

    fn setting(&self, p: Pair<Rule>) -> Setting {
        let span = self.span(&p);
        let mut it = p.into_inner();
        let key = it.next().map(|i| self.ident(i)).unwrap_or_else(|| self.missing(span));
        let mut value = None;
        let mut every = None;
        for c in it {
            match c.as_rule() {
                Rule::every => every = Some(self.every(c, span)),
                _ => value = Some(self.expr(c)),
            }
        }
        Setting { key, value, every }
    }

    fn every(&self, ev: Pair<Rule>, span: Span) -> Every {
        {
            let mut count = None;
            let mut unit = self.missing(span);
            for c in ev.into_inner() {
                match c.as_rule() {
                    Rule::int => count = Some((self.int(&c), self.span(&c))),
                    _ => unit = self.ident(c),
                }
            }
            Every { count, unit }
        }
    }

    // ---- expressions ------------------------------------------------------

    fn expr(&self, p: Pair<Rule>) -> Expr {
        PRATT
            .map_primary(|pe| self.postfix_expr(pe))
            .map_prefix(|op, e| {
                let span = self.span(&op).to(e.span);
                let op = if op.as_rule() == Rule::neg { UnOp::Neg } else { UnOp::Not };
                Expr { kind: ExprKind::Unary(op, Box::new(e)), span }
            })
            .map_infix(|l, op, r| self.infix(l, op, r))
            .parse(p.into_inner())
    }

    fn infix(&self, l: Expr, op: Pair<Rule>, r: Expr) -> Expr {
        let span = l.span.to(r.span);
        let op = match op.as_rule() {
            Rule::pipe => return pipe(l, r),
            Rule::or => BinOp::Or,
            Rule::and => BinOp::And,
            Rule::eq => BinOp::Eq,
            Rule::ne => BinOp::Ne,
            Rule::lt => BinOp::Lt,
            Rule::le => BinOp::Le,
            Rule::gt => BinOp::Gt,
            Rule::ge => BinOp::Ge,
            Rule::add => BinOp::Add,
            Rule::sub => BinOp::Sub,
            Rule::mul => BinOp::Mul,
            Rule::div => BinOp::Div,
            Rule::rem => BinOp::Rem,
            Rule::matmul => BinOp::MatMul,
            _ => BinOp::Pow,
        };
        Expr { kind: ExprKind::Binary(op, Box::new(l), Box::new(r)), span }
    }

    fn postfix_expr(&self, p: Pair<Rule>) -> Expr {
        let mut it = p.into_inner();
        let Some(first) = it.next() else {
            return self.missing_expr(Span::new(self.file, 0, 0));
        };
        let mut e = self.primary(first);
        for post in it {
            let span = e.span.to(self.span(&post));
            let kind = match post.as_rule() {
                Rule::call_args => ExprKind::Call { callee: Box::new(e), args: self.args(post) },
                Rule::method => {
                    let name = post.into_inner().next().map(|i| self.ident(i)).unwrap_or_else(|| self.missing(span));
                    ExprKind::Field { base: Box::new(e), name }
                }
                _ => ExprKind::Index {
                    base: Box::new(e),
                    items: post.into_inner().map(|i| self.index_item(i)).collect(),
                },
            };
            e = Expr { kind, span };
        }
        e
    }

    fn args(&self, p: Pair<Rule>) -> Vec<Arg> {
        p.into_inner()
            .map(|a| {
                let mut name = None;
                let mut value = None;
                for c in a.into_inner() {
                    match c.as_rule() {
                        Rule::ident => name = Some(self.ident(c)),
                        _ => value = Some(self.expr(c)),
                    }
                }
                let span = name.as_ref().map(|n: &Ident| n.span).unwrap_or(Span::new(self.file, 0, 0));
                Arg { name, value: value.unwrap_or_else(|| self.missing_expr(span)) }
            })
            .collect()
    }

    fn index_item(&self, p: Pair<Rule>) -> IndexItem {
        let span = self.span(&p);
        let Some(inner) = p.into_inner().next() else {
            return IndexItem::Ellipsis(span);
        };
        match inner.as_rule() {
            Rule::ellipsis => IndexItem::Ellipsis(span),
            Rule::slice => self.slice(inner),
            _ => IndexItem::Expr(self.expr(inner)),
        }
    }

    /// `a:b:c` with any part missing; which parts exist is read from the
    /// positions of the colons, since pest drops the literal `:` tokens.
    fn slice(&self, p: Pair<Rule>) -> IndexItem {
        let span = self.span(&p);
        let text = p.as_str();
        let base = p.as_span().start();
        let colons: Vec<usize> = text.match_indices(':').map(|(i, _)| base + i).collect();
        let mut parts: [Option<Expr>; 3] = [None, None, None];
        for c in p.into_inner() {
            let at = c.as_span().start();
            let slot = colons.iter().filter(|&&k| k < at).count().min(2);
            parts[slot] = Some(self.expr(c));
        }
        let [start, end, step] = parts;
        IndexItem::Slice { start, end, step, span }
    }

    fn primary(&self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        let kind = match p.as_rule() {
            Rule::float => ExprKind::Float(p.as_str().parse().unwrap_or(f64::NAN)),
            Rule::int => ExprKind::Int(self.int(&p)),
            Rule::bool => ExprKind::Bool(p.as_str() == "true"),
            Rule::string => {
                let s = p.as_str();
                ExprKind::Str(s[1..s.len() - 1].to_string())
            }
            Rule::ident => ExprKind::Name(p.as_str().to_string()),
            Rule::paren => {
                return p.into_inner().next().map(|e| self.expr(e)).unwrap_or_else(|| self.missing_expr(span));
            }
            Rule::list => ExprKind::List(p.into_inner().map(|e| self.expr(e)).collect()),
            Rule::record => ExprKind::Record(
                p.into_inner()
                    .map(|entry| {
                        let mut it = entry.into_inner();
                        let k = it.next().map(|i| self.ident(i)).unwrap_or_else(|| self.missing(span));
                        let v = it.next().map(|e| self.expr(e)).unwrap_or_else(|| self.missing_expr(span));
                        (k, v)
                    })
                    .collect(),
            ),
            Rule::block => ExprKind::Block(self.block(p)),
            Rule::if_expr => return self.if_expr(p),
            _ => ExprKind::Int(0),
        };
        Expr { kind, span }
    }

    fn if_expr(&self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        let mut it = p.into_inner();
        let cond = it.next().map(|e| self.expr(e)).unwrap_or_else(|| self.missing_expr(span));
        let then = it.next().map(|b| self.block(b)).unwrap_or_else(|| self.empty_block(span));
        let els = match it.next() {
            Some(e) if e.as_rule() == Rule::if_expr => self.if_expr(e),
            Some(b) => {
                let bs = self.span(&b);
                Expr { kind: ExprKind::Block(self.block(b)), span: bs }
            }
            None => self.missing_expr(span),
        };
        Expr { kind: ExprKind::If { cond: Box::new(cond), then, els: Box::new(els) }, span }
    }
}

/// Fold `t0 op t1 op t2 ...` with `*` `/` before `+` `-`, left-associative.
fn fold_dims(terms: Vec<DimExpr>, ops: Vec<DimOp>) -> DimExpr {
    let mut terms = terms.into_iter();
    let Some(first) = terms.next() else {
        return DimExpr::Int(0, Span::new(crate::span::FileId(0), 0, 0));
    };
    // First pass: collapse products; second: sums.
    let mut sums: Vec<DimExpr> = vec![first];
    let mut sum_ops = Vec::new();
    for (op, t) in ops.into_iter().zip(terms) {
        match op {
            DimOp::Mul | DimOp::Div => {
                let l = sums.pop().unwrap_or(DimExpr::Int(0, t.span()));
                let span = l.span().to(t.span());
                sums.push(DimExpr::Bin(Box::new(l), op, Box::new(t), span));
            }
            DimOp::Add | DimOp::Sub => {
                sum_ops.push(op);
                sums.push(t);
            }
        }
    }
    let mut sums = sums.into_iter();
    let mut acc = sums.next().unwrap_or(DimExpr::Int(0, Span::new(crate::span::FileId(0), 0, 0)));
    for (op, t) in sum_ops.into_iter().zip(sums) {
        let span = acc.span().to(t.span());
        acc = DimExpr::Bin(Box::new(acc), op, Box::new(t), span);
    }
    acc
}

/// `x |> f` is `f(x)`; `x |> f(a)` is `f(x, a)`.
fn pipe(x: Expr, f: Expr) -> Expr {
    let span = x.span.to(f.span);
    let arg = Arg { name: None, value: x };
    let kind = match f.kind {
        ExprKind::Call { callee, mut args } => {
            args.insert(0, arg);
            ExprKind::Call { callee, args }
        }
        _ => ExprKind::Call { callee: Box::new(f), args: vec![arg] },
    };
    Expr { kind, span }
}
