//! The abstract syntax tree. Every node carries the span it was parsed from.

use crate::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Module {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug)]
pub enum Item {
    Use(Use),
    Const(Const),
    Fn(FnDecl),
    Model(ModelDecl),
    Optimizer(OptimizerDecl),
    Dataset(DatasetDecl),
    Experiment(ExperimentDecl),
}

impl Item {
    /// The name an item defines in its module (imports define theirs per name).
    pub fn name(&self) -> Option<&Ident> {
        match self {
            Item::Use(_) => None,
            Item::Const(c) => Some(&c.name),
            Item::Fn(f) => f.name.as_ref(),
            Item::Model(m) => Some(&m.name),
            Item::Optimizer(o) => Some(&o.name),
            Item::Dataset(d) => Some(&d.name),
            Item::Experiment(e) => Some(&e.name),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Use {
    pub module: ModuleRef,
    /// `use a.b.{x, y as z}`; `None` for `use a.b.c` (module or single item).
    pub names: Option<Vec<UseName>>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ModuleRef {
    /// `std.nn`, `layers`, `lib.blocks` — segments of a dotted path.
    Dotted(Vec<Ident>),
    /// `"../common/layers.nn"` — a path relative to the importing file.
    File(String, Span),
}

#[derive(Clone, Debug)]
pub struct UseName {
    pub name: Ident,
    pub alias: Option<Ident>,
}

impl UseName {
    pub fn local(&self) -> &Ident {
        self.alias.as_ref().unwrap_or(&self.name)
    }
}

#[derive(Clone, Debug)]
pub struct Const {
    pub name: Ident,
    pub ty: Option<Type>,
    pub value: ConstValue,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ConstValue {
    Expr(Expr),
    Sweep(Vec<Expr>, Span),
}

/// The language's element types are the IR's.
pub use crate::ir::DType;

#[derive(Clone, Debug)]
pub struct Type {
    pub kind: TypeKind,
    /// `classes N`: the values are ids in `0..N`.
    pub classes: Option<DimExpr>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum TypeKind {
    Tensor { dtype: DType, shape: Vec<ShapeItem> },
    Int,
    Float,
    Dims,
    Init,
}

#[derive(Clone, Debug)]
pub enum ShapeItem {
    /// `...` or `...S`: any number of leading dims.
    Rest(Option<Ident>, Span),
    Dim(DimExpr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DimOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Debug)]
pub enum DimExpr {
    Int(i64, Span),
    Name(Ident),
    Bin(Box<DimExpr>, DimOp, Box<DimExpr>, Span),
}

impl DimExpr {
    pub fn span(&self) -> Span {
        match self {
            DimExpr::Int(_, s) | DimExpr::Bin(_, _, _, s) => *s,
            DimExpr::Name(i) => i.span,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Param {
    pub name: Ident,
    pub ty: Option<Type>,
    pub default: Option<Expr>,
}

/// A function: a named `fn`, a model's forward (`name == None`), or an
/// optimizer's `update`.
#[derive(Clone, Debug)]
pub struct FnDecl {
    pub name: Option<Ident>,
    pub params: Vec<Param>,
    pub ret: Option<Type>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub tail: Box<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Stmt {
    Let {
        name: Ident,
        ty: Option<Type>,
        value: Expr,
    },
    /// `m = b1 * m + ...`: a new value for an optimizer state or a buffer.
    Assign {
        name: Ident,
        value: Expr,
    },
    /// `assert cond, "message"`: must hold when the program is compiled.
    Assert {
        cond: Expr,
        message: Option<String>,
    },
}

#[derive(Clone, Debug)]
pub struct ModelDecl {
    pub name: Ident,
    pub params: Vec<Param>,
    pub fields: Vec<Field>,
    pub forward: Option<FnDecl>,
    pub methods: Vec<FnDecl>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Field {
    pub name: Ident,
    pub kind: FieldKind,
}

#[derive(Clone, Debug)]
pub enum FieldKind {
    /// A trained tensor: `w: f32[in, out] = glorot`.
    Param { ty: Type, init: Option<Expr> },
    /// Model state that is not trained: `buffer running_mean: f32[c] =
    /// zeros`, assigned by the model's own code in the training step.
    Buffer { ty: Type, init: Option<Expr> },
    /// A sub-model: `l1: Linear(784, hidden)`.
    Sub(Expr),
    /// A stack of sub-models applied in sequence: `blocks: [Block(d); n]`.
    Repeat { model: Expr, count: Expr },
}

#[derive(Clone, Debug)]
pub struct OptimizerDecl {
    pub name: Ident,
    pub params: Vec<Param>,
    pub states: Vec<StateDecl>,
    pub update: FnDecl,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct StateDecl {
    pub name: Ident,
    pub init: Option<Expr>,
}

#[derive(Clone, Debug)]
pub struct DatasetDecl {
    pub name: Ident,
    pub source: Expr,
    pub fields: Vec<DataField>,
    pub derived: Vec<(Ident, Expr)>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct DataField {
    pub name: Ident,
    pub ty: Type,
}

#[derive(Clone, Debug)]
pub struct ExperimentDecl {
    pub name: Ident,
    pub settings: Vec<Setting>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Setting {
    pub key: Ident,
    /// `None` for `checkpoint = every epoch`.
    pub value: Option<Expr>,
    pub every: Option<Every>,
}

/// `every epoch`, `every 500 steps`.
#[derive(Clone, Debug)]
pub struct Every {
    pub count: Option<(i64, Span)>,
    pub unit: Ident,
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    MatMul,
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::MatMul => "@",
            BinOp::Pow => "^",
        }
    }
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Name(String),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(a, b: 1)`, and `x |> f(a)` desugared to `f(x, a)`.
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    /// `x.name`: a field, a module member, or (under a call) a method.
    Field {
        base: Box<Expr>,
        name: Ident,
    },
    Index {
        base: Box<Expr>,
        items: Vec<IndexItem>,
    },
    List(Vec<Expr>),
    Record(Vec<(Ident, Expr)>),
    Block(Block),
    If {
        cond: Box<Expr>,
        then: Block,
        els: Box<Expr>,
    },
}

#[derive(Clone, Debug)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug)]
pub enum IndexItem {
    Ellipsis(Span),
    Slice { start: Option<Expr>, end: Option<Expr>, step: Option<Expr>, span: Span },
    Expr(Expr),
}

impl Expr {
    /// The plain names an expression reads, in order (with repeats).
    pub fn names(&self, out: &mut Vec<String>) {
        match &self.kind {
            ExprKind::Name(n) => out.push(n.clone()),
            ExprKind::Unary(_, e) => e.names(out),
            ExprKind::Binary(_, a, b) => {
                a.names(out);
                b.names(out);
            }
            ExprKind::Call { args, .. } => args.iter().for_each(|a| a.value.names(out)),
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Str(_)
            | ExprKind::Field { .. }
            | ExprKind::Index { .. }
            | ExprKind::List(_)
            | ExprKind::Record(_)
            | ExprKind::Block(_)
            | ExprKind::If { .. } => {}
        }
    }
}
