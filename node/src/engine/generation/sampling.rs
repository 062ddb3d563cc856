//! Choosing the next token: greedy, or sampled at a temperature within the
//! top-p nucleus from a seeded random stream.

use wire::jobs::GenerationParams;

/// Greedy at temperature 0; otherwise samples from the softmax at that
/// temperature, restricted to the top-p nucleus.
pub(super) fn sample(logits: &[f32], params: &GenerationParams, rng: &mut SplitMix64) -> u32 {
    let finite = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    if params.temperature <= 0.0 {
        let mut best = 0;
        for (i, &x) in logits.iter().enumerate() {
            if finite(x) > finite(logits[best]) {
                best = i;
            }
        }
        return best as u32;
    }
    let t = f64::from(params.temperature);
    let max = logits
        .iter()
        .map(|&x| finite(x))
        .fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &x)| (i as u32, (f64::from(finite(x) - max) / t).exp()))
        .collect();
    if params.top_p < 1.0 {
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let mut kept = 0.0;
        let mut n = 0;
        for p in &probs {
            kept += p.1;
            n += 1;
            if kept >= f64::from(params.top_p) * total {
                break;
            }
        }
        probs.truncate(n.max(1));
    }
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let mut r = rng.next_f64() * total;
    for (i, p) in &probs {
        r -= p;
        if r <= 0.0 {
            return *i;
        }
    }
    probs.last().map_or(0, |p| p.0)
}

/// A small deterministic random stream (SplitMix64), so that a seeded job
/// samples the same tokens on every node.
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit_and_sampling_follows_the_seed() {
        let greedy = GenerationParams::default();
        let mut rng = SplitMix64(1);
        assert_eq!(sample(&[0.1, 3.0, f32::NAN, 2.0], &greedy, &mut rng), 1);
        let hot = GenerationParams {
            temperature: 1.0,
            top_p: 0.5,
            ..Default::default()
        };
        // With top-p 0.5 only the dominant token survives.
        for _ in 0..20 {
            assert_eq!(sample(&[0.0, 5.0, 0.0], &hot, &mut rng), 1);
        }
        let warm = GenerationParams {
            temperature: 1.0,
            ..Default::default()
        };
        let draw = |seed| {
            let mut r = SplitMix64(seed);
            (0..32)
                .map(|_| sample(&[1.0, 1.0, 1.0, 1.0], &warm, &mut r))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert!(draw(7).iter().any(|&t| t != draw(7)[0]), "not one token");
    }
}
