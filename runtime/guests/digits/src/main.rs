//! Classifies scikit-learn's 8×8 digits with a small quantised MLP through the tensor host
//! API. Input: N images of 64 bytes each (pixel values 0–16, row-major, as in
//! `load_digits().images`). Output: N bytes, the predicted digit of each. Weights are in
//! `weights.bin`, written by `train.py` (trained on samples 0–1199 only). An input whose
//! length is not a multiple of 64 ends the job with exit status 2; no images give no output.
use std::io::{Read, Write};

use cairn_tensor::{DType, Tensor};

/// The weights (format in `train.py`).
const WEIGHTS: &[u8] = include_bytes!("../weights.bin");
const PIXELS: usize = 64;

fn main() {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .expect("read stdin");
    if input.len() % PIXELS != 0 {
        eprintln!("input: N images of 64 bytes each");
        std::process::exit(2);
    }
    let n = input.len() / PIXELS;
    if n == 0 {
        return;
    }
    let model = Model::load(WEIGHTS);
    // Pixels 0..16 are already valid i8 values.
    let x = Tensor::from_bytes(DType::I8, n, PIXELS, &input);
    let h = x.matmul(&model.w1).add(&model.b1).relu();
    let h8 = h.requantize(DType::I8, model.requant);
    let logits = h8.matmul(&model.w2).add(&model.b2);
    let digits: Vec<u8> = logits
        .argmax()
        .to_vec::<i32>()
        .iter()
        .map(|&d| d as u8)
        .collect();
    std::io::stdout().write_all(&digits).expect("write stdout");
}

/// The quantised MLP, uploaded once.
struct Model {
    w1: Tensor,
    b1: Tensor,
    requant: f32,
    w2: Tensor,
    b2: Tensor,
}

impl Model {
    fn load(bytes: &[u8]) -> Self {
        assert_eq!(&bytes[..4], b"CDG1", "weights magic");
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        let (inputs, hidden, classes) = (word(4), word(8), word(12));
        assert_eq!(inputs, PIXELS, "weights input width");
        let requant = f32::from_le_bytes(bytes[16..20].try_into().unwrap());
        let mut at = 20;
        let mut take = |len: usize| {
            let part = &bytes[at..at + len];
            at += len;
            part
        };
        let w1 = Tensor::from_bytes(DType::I8, inputs, hidden, take(inputs * hidden));
        let b1 = Tensor::from_bytes(DType::I32, 1, hidden, take(hidden * 4));
        let w2 = Tensor::from_bytes(DType::I8, hidden, classes, take(hidden * classes));
        let b2 = Tensor::from_bytes(DType::I32, 1, classes, take(classes * 4));
        Self {
            w1,
            b1,
            requant,
            w2,
            b2,
        }
    }
}
