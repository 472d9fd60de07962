//! Module loading and name resolution.
//!
//! Loads the root file and everything it imports (std from the binary, user
//! modules relative to the importing file), detects import cycles, and builds
//! each module's scope: its own items plus what it imports. Names inside
//! bodies are resolved by the checker against these scopes.

mod stdlib;

use crate::diag::{Diag, Diags, closest, did_you_mean};
use crate::span::{FileId, SourceMap, Span};
use crate::syntax::{self, ast};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use stdlib::STD_MODULES;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModuleId(pub u32);

/// An item of some module (a constant, fn, model, optimizer, dataset or
/// experiment): the id `check` and `lower` both key items by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ItemRef {
    pub module: ModuleId,
    pub index: usize,
}

/// What a name in a module's scope refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Def {
    /// Item `index` of module `module`.
    Item(ModuleId, usize),
    Module(ModuleId),
}

#[derive(Debug)]
pub struct ModuleInfo {
    /// `std.nn`, or the file path as the user wrote it.
    pub name: String,
    pub file: FileId,
    pub ast: ast::Module,
    /// Names visible at the top level of this module, with where each was bound.
    pub scope: HashMap<String, (Def, Span)>,
}

#[derive(Debug, Default)]
pub struct Program {
    pub sources: SourceMap,
    pub modules: Vec<ModuleInfo>,
}

impl Program {
    pub fn module(&self, id: ModuleId) -> &ModuleInfo {
        &self.modules[id.0 as usize]
    }

    pub fn item(&self, module: ModuleId, index: usize) -> &ast::Item {
        &self.module(module).ast.items[index]
    }
}

/// Where a module's text comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Origin {
    Std(&'static str),
    File(PathBuf),
}

struct Loader {
    program: Program,
    diags: Diags,
    by_origin: HashMap<Origin, ModuleId>,
    /// Modules being loaded, innermost last: a `use` of one of these is a cycle.
    stack: Vec<Origin>,
}

/// Load `root` and its imports. The root is always module 0.
pub fn load(root: &Path) -> (Program, Diags) {
    let mut loader =
        Loader { program: Program::default(), diags: Vec::new(), by_origin: HashMap::new(), stack: Vec::new() };
    match std::fs::read_to_string(root) {
        Ok(text) => {
            let origin = Origin::File(normalize(root));
            loader.load_text(origin, root.display().to_string(), Some(root), &text);
        }
        Err(e) => loader.diags.push(
            Diag::error(format!("cannot read `{}`: {e}", root.display()))
                .help("check the path; `nnc check` takes .nn files"),
        ),
    }
    (loader.program, loader.diags)
}

/// Load a source string as the root module (tests, fuzzing, `std` files).
pub fn load_str(name: &str, text: &str) -> (Program, Diags) {
    let mut loader =
        Loader { program: Program::default(), diags: Vec::new(), by_origin: HashMap::new(), stack: Vec::new() };
    let origin = match STD_MODULES.iter().find(|(n, _)| format!("std/{n}.nn") == name) {
        Some((n, _)) => Origin::Std(n),
        None => Origin::File(PathBuf::from(name)),
    };
    loader.load_text(origin, name.to_string(), None, text);
    (loader.program, loader.diags)
}

fn normalize(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Loader {
    fn load_text(&mut self, origin: Origin, shown: String, path: Option<&Path>, text: &str) -> ModuleId {
        let file = self.program.sources.add(shown.clone(), path, text);
        let name = match &origin {
            Origin::Std(n) => format!("std.{n}"),
            Origin::File(_) => shown,
        };
        let ast = match syntax::parse(file, text) {
            Ok(m) => m,
            Err(d) => {
                self.diags.push(d);
                ast::Module { items: Vec::new() }
            }
        };
        let id = ModuleId(self.program.modules.len() as u32);
        self.by_origin.insert(origin.clone(), id);
        self.program.modules.push(ModuleInfo { name, file, ast, scope: HashMap::new() });
        self.stack.push(origin);
        self.define_items(id);
        self.import_all(id, path);
        self.stack.pop();
        id
    }

    fn define_items(&mut self, id: ModuleId) {
        let mut scope: HashMap<String, (Def, Span)> = HashMap::new();
        for (index, item) in self.program.module(id).ast.items.iter().enumerate() {
            let Some(name) = item.name() else { continue };
            if let Some((_, first)) = scope.get(&name.name) {
                self.diags.push(duplicate(&name.name, name.span, *first));
                continue;
            }
            scope.insert(name.name.clone(), (Def::Item(id, index), name.span));
        }
        self.program.modules[id.0 as usize].scope = scope;
    }

    fn import_all(&mut self, id: ModuleId, path: Option<&Path>) {
        let uses: Vec<ast::Use> = self
            .program
            .module(id)
            .ast
            .items
            .iter()
            .filter_map(|i| if let ast::Item::Use(u) = i { Some(u.clone()) } else { None })
            .collect();
        let dir = path.and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
        for u in &uses {
            self.import(id, &dir, u);
        }
    }

    fn import(&mut self, into: ModuleId, dir: &Path, u: &ast::Use) {
        let (target, item) = match self.resolve_use(dir, u) {
            Ok(t) => t,
            Err(d) => return self.diags.push(d),
        };
        match (&u.names, item) {
            (Some(names), _) => {
                for n in names {
                    if let Some(def) = self.lookup_export(target, &n.name) {
                        self.bind(into, n.local(), def);
                    }
                }
            }
            (None, Some(item)) => {
                if let Some(def) = self.lookup_export(target, &item) {
                    self.bind(into, &item, def);
                }
            }
            (None, None) => {
                if let ast::ModuleRef::Dotted(path) = &u.module
                    && let Some(last) = path.last()
                {
                    self.bind(into, last, Def::Module(target));
                }
            }
        }
    }

    /// The module a `use` names, and for `use a.b.c` without braces whether
    /// `c` is an item of `a.b` rather than a module.
    fn resolve_use(&mut self, dir: &Path, u: &ast::Use) -> Result<(ModuleId, Option<ast::Ident>), Diag> {
        match &u.module {
            ast::ModuleRef::File(rel, span) => Ok((self.load_file(&dir.join(rel), rel, *span)?, None)),
            ast::ModuleRef::Dotted(path) => {
                if u.names.is_none() && path.len() >= 2 && !self.is_module_path(dir, path) {
                    let (last, prefix) = path.split_last().map(|(l, p)| (l.clone(), p)).ok_or_else(|| empty_use(u))?;
                    return Ok((self.load_dotted(dir, prefix, u.span)?, Some(last)));
                }
                Ok((self.load_dotted(dir, path, u.span)?, None))
            }
        }
    }

    fn is_module_path(&self, dir: &Path, path: &[ast::Ident]) -> bool {
        let names: Vec<&str> = path.iter().map(|i| i.name.as_str()).collect();
        match names.split_first() {
            Some((&"std", rest)) => STD_MODULES.iter().any(|(n, _)| *n == rest.join(".")),
            _ => dir.join(format!("{}.nn", names.join("/"))).is_file(),
        }
    }

    fn load_dotted(&mut self, dir: &Path, path: &[ast::Ident], span: Span) -> Result<ModuleId, Diag> {
        let names: Vec<&str> = path.iter().map(|i| i.name.as_str()).collect();
        let span = path.first().map(|f| f.span.to(path.last().map_or(f.span, |l| l.span))).unwrap_or(span);
        if let Some((&"std", rest)) = names.split_first() {
            let wanted = rest.join(".");
            let Some((name, text)) = STD_MODULES.iter().find(|(n, _)| *n == wanted) else {
                let d = Diag::error(format!("no module `std.{wanted}` in the standard library")).at(span, "not in std");
                let hint = closest(&wanted, STD_MODULES.iter().map(|(n, _)| *n))
                    .map(|c| format!("did you mean `std.{c}`?"))
                    .unwrap_or_else(|| {
                        format!(
                            "std has: {}",
                            STD_MODULES.iter().map(|(n, _)| format!("std.{n}")).collect::<Vec<_>>().join(", ")
                        )
                    });
                return Err(d.help(hint));
            };
            return self.load_std(name, text, span);
        }
        let rel = format!("{}.nn", names.join("/"));
        self.load_file(&dir.join(&rel), &rel, span)
    }

    fn load_std(&mut self, name: &'static str, text: &'static str, span: Span) -> Result<ModuleId, Diag> {
        let origin = Origin::Std(name);
        self.enter(&origin, &format!("std.{name}"), span)?;
        if let Some(id) = self.by_origin.get(&origin) {
            return Ok(*id);
        }
        Ok(self.load_text(origin, format!("std/{name}.nn"), None, text))
    }

    fn load_file(&mut self, path: &Path, shown: &str, span: Span) -> Result<ModuleId, Diag> {
        let origin = Origin::File(normalize(path));
        self.enter(&origin, shown, span)?;
        if let Some(id) = self.by_origin.get(&origin) {
            return Ok(*id);
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diag::error(format!("cannot read module `{shown}`: {e}"))
                .at(span, format!("looked for {}", path.display()))
                .help("user modules are resolved relative to the importing file; std modules start with `std.`")
        })?;
        Ok(self.load_text(origin, path.display().to_string(), Some(path), &text))
    }

    /// A module already on the loading stack is an import cycle.
    fn enter(&self, origin: &Origin, shown: &str, span: Span) -> Result<(), Diag> {
        let Some(pos) = self.stack.iter().position(|o| o == origin) else {
            return Ok(());
        };
        let chain: Vec<String> = self.stack[pos..].iter().map(origin_name).chain([origin_name(origin)]).collect();
        Err(Diag::error(format!("import cycle: {}", chain.join(" → ")))
            .at(span, format!("`{shown}` is still being loaded"))
            .help("move what both modules need into a third module that neither imports"))
    }

    fn lookup_export(&mut self, module: ModuleId, name: &ast::Ident) -> Option<Def> {
        let m = self.program.module(module);
        if let Some((def, _)) = m.scope.get(&name.name)
            && matches!(def, Def::Item(owner, _) if *owner == module)
        {
            return Some(*def);
        }
        let own = m.scope.iter().filter(|(_, (d, _))| matches!(d, Def::Item(o, _) if *o == module));
        let mut d = Diag::error(format!("`{}` is not defined in module `{}`", name.name, m.name))
            .at(name.span, "not found in that module");
        if let Some(h) = did_you_mean(&name.name, own.map(|(n, _)| n.as_str())) {
            d = d.help(h);
        }
        self.diags.push(d);
        None
    }

    fn bind(&mut self, into: ModuleId, local: &ast::Ident, def: Def) {
        let scope = &mut self.program.modules[into.0 as usize].scope;
        if let Some((_, bound)) = scope.get(&local.name) {
            // Items are bound before imports, so the one bound first is not
            // always the one written first: blame the later one in the source.
            let (again, first) = if bound.file == local.span.file && bound.start > local.span.start {
                (*bound, local.span)
            } else {
                (local.span, *bound)
            };
            let d = duplicate(&local.name, again, first);
            self.diags.push(d);
            return;
        }
        scope.insert(local.name.clone(), (def, local.span));
    }
}

fn origin_name(o: &Origin) -> String {
    match o {
        Origin::Std(n) => format!("std.{n}"),
        Origin::File(p) => p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

fn duplicate(name: &str, span: Span, first: Span) -> Diag {
    Diag::error(format!("`{name}` is defined twice"))
        .at(span, "defined again here")
        .label(first, "first defined here")
        .help("rename one of them, or import it under another name with `as`")
}

fn empty_use(u: &ast::Use) -> Diag {
    Diag::error("empty import").at(u.span, "nothing to import")
}
