//! `init_map`: the tensors of a file written elsewhere (a PyTorch
//! `state_dict` saved with safetensors) under the model's names and
//! layouts. Every problem is collected, so a mapping is fixed in one go.

use super::checkpoint::Tensors;
use crate::lower::{InitMap, Layout};

/// The file's tensors renamed and permuted by `map`; the others keep their
/// names unless skipped. Problems: a source missing from the file, a
/// layout that does not fit the tensor's rank, two tensors for one name.
pub fn apply(mut file: Tensors, map: &InitMap) -> (Tensors, Vec<String>) {
    let mut out = Tensors::new();
    let mut problems = Vec::new();
    for r in &map.renames {
        let Some((shape, values)) = file.remove(&r.from) else {
            problems.push(format!("`{}` (mapped to `{}`): not in the file", r.from, r.to));
            continue;
        };
        if r.layout == Layout::Unstated && shape.len() >= 2 {
            problems.push(format!(
                "`{}` {shape:?} (mapped to `{}`): say its layout: PyTorch keeps Linear weights [out, in] and kernels OIHW, nnc [in, out] and HWIO (`layout: \"linear\"`, `\"conv\"`, `\"same\"` or `transpose: [..]`)",
                r.from, r.to
            ));
            continue;
        }
        let tensor = match perm_of(&r.layout, shape.len()) {
            Some(perm) => permute(&shape, &values, &perm),
            None if matches!(r.layout, Layout::Same | Layout::Unstated) => (shape, values),
            None => {
                problems.push(format!("`{}` {shape:?}: its layout needs a tensor of another rank", r.from));
                continue;
            }
        };
        if out.insert(r.to.clone(), tensor).is_some() {
            problems.push(format!("`{}`: mapped from two tensors of the file", r.to));
        }
    }
    for (name, t) in file {
        if !map.skips(&name) && !out.contains_key(&name) {
            out.insert(name, t);
        }
    }
    (out, problems)
}

/// The axis order a layout asks for on a tensor of `rank` axes.
fn perm_of(layout: &Layout, rank: usize) -> Option<Vec<usize>> {
    match layout {
        Layout::Same | Layout::Unstated => None,
        Layout::Permute(p) => (p.len() == rank).then(|| p.clone()),
        Layout::Conv => (rank >= 3).then(|| (2..rank).chain([1, 0]).collect()),
    }
}

/// `values` of `shape` with axis `i` of the result taken from axis `perm[i]`.
pub fn permute(shape: &[usize], values: &[f32], perm: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    let mut strides = vec![1usize; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    let out_strides: Vec<usize> = perm.iter().map(|&a| strides[a]).collect();
    let mut out = Vec::with_capacity(values.len());
    let mut index = vec![0usize; perm.len()];
    for _ in 0..values.len() {
        out.push(values[index.iter().zip(&out_strides).map(|(i, s)| i * s).sum::<usize>()]);
        for a in (0..index.len()).rev() {
            index[a] += 1;
            if index[a] < out_shape[a] {
                break;
            }
            index[a] = 0;
        }
    }
    (out_shape, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_moves_axes() {
        // [[0, 1, 2], [3, 4, 5]] transposed.
        let (s, v) = permute(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], &[1, 0]);
        assert_eq!(s, vec![3, 2]);
        assert_eq!(v, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        // OIHW [2, 1, 1, 2] to HWIO [1, 2, 1, 2]: out[h][w][i][o] = in[o][i][h][w].
        let (s, v) = permute(&[2, 1, 1, 2], &[10.0, 11.0, 20.0, 21.0], &perm_of(&Layout::Conv, 4).unwrap());
        assert_eq!(s, vec![1, 2, 1, 2]);
        assert_eq!(v, vec![10.0, 20.0, 11.0, 21.0]);
    }

    #[test]
    fn skips_match_names_and_their_dotted_parts() {
        let map = InitMap { renames: vec![], skips: vec!["fc3".into(), "num_batches_tracked".into()] };
        assert!(map.skips("fc3.weight") && map.skips("fc3") && map.skips("bn1.num_batches_tracked"));
        assert!(!map.skips("fc30.weight") && !map.skips("xfc3") && !map.skips("bn1.num_batches"));
    }
}
