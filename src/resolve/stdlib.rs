//! The standard library, embedded so `nnc` works from any directory.

/// `(module name after "std.", source text)`.
pub const STD_MODULES: &[(&str, &str)] = &[
    ("init", include_str!("../../std/init.nn")),
    ("nn", include_str!("../../std/nn.nn")),
    ("loss", include_str!("../../std/loss.nn")),
    ("metrics", include_str!("../../std/metrics.nn")),
    ("optim", include_str!("../../std/optim.nn")),
    ("schedule", include_str!("../../std/schedule.nn")),
];
