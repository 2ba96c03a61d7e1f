// The explicit random generator of xtgrad: seeded, copyable, serialisable; no global state anywhere.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include <xtgrad/lib/array.hpp>

namespace xtgrad {

// xoshiro256** with splitmix64 seeding: the same seed gives the same stream on every platform.
class Rng {
public:
    // Generator state as four 64-bit words (for checkpoints).
    using State = std::array<std::uint64_t, 4>;

    explicit Rng(std::uint64_t seed = 0) { reseed(seed); }

    // Restarts the stream from a seed.
    void reseed(std::uint64_t seed);

    // Next 64 random bits (inline: dropout draws one per element).
    std::uint64_t next_u64() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    // Uniform float in [0, 1) with 24 random bits.
    float uniform() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }

    // Uniform float in [lo, hi).
    float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }

    // Uniform integer in [0, n), without modulo bias; n > 0.
    std::uint64_t below(std::uint64_t n);

    // Standard normal sample (Box-Muller).
    float normal();

    // Current state, and setting it back: the stream continues exactly where it was.
    State state() const { return s_; }
    void set_state(const State& s) { s_ = s; }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    State s_{};
};

// Counter-based random bits: SplitMix64's output function applied to seed + (index + 1) * golden gamma, a pure
// function of (seed, index). Any part of such a stream can be drawn in any order by any process, which is what
// makes dropout masks independent of how a batch is split between processes (docs/distributed.md).
inline std::uint64_t counter_bits(std::uint64_t seed, std::uint64_t index) {
    std::uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// The threshold t = ceil(p 2^32) below which 32 random bits mean "drop": probability p (0 <= p < 1).
inline std::uint64_t bernoulli_threshold(float p) {
    return static_cast<std::uint64_t>(std::ceil(static_cast<double>(p) * 0x1.0p32));
}

// Row `row` of a dropout mask with n columns, keyed by seed: out[j] = 0 with probability p, else keep. Entry j
// takes the low (j even) or high (j odd) 32 bits of counter_bits(seed, row * ceil(n / 2) + j / 2): the row's
// values depend on (seed, row, n) only, never on which other rows are drawn or by whom. Vectorised.
void bernoulli_row(float* out, std::size_t n, std::uint64_t seed, std::uint64_t row, float p, float keep);

// What a dropout mask is drawn from: the seed of one draw (the same in every process of a data-parallel run) and
// where the mask's rows sit in the whole batch. The rows are a window stacked time-major, `batch` streams per
// step, this process's streams being [offset, offset + batch) of `global`: row r is the whole batch's row
// (r / batch) * global + offset + r % batch. batch = 0: each row is its own (weights, values of the whole batch).
struct MaskKey {
    std::uint64_t seed = 0;
    std::size_t batch = 0, offset = 0, global = 0;

    // The whole batch's row of local row r.
    std::uint64_t global_row(std::size_t r) const {
        return batch == 0 ? r : (r / batch) * global + offset + r % batch;
    }
};

// Fills the (rows x cols) row-major m with a dropout mask: entry (r, j) is 0 with probability p, else
// 1 / (1 - p), drawn as bernoulli_row(m + r * cols, cols, key.seed, key.global_row(r), ...).
void fill_dropout_mask(float* m, std::size_t rows, std::size_t cols, float p, const MaskKey& key);

// Fills a with U(lo, hi) samples drawn row by row.
void fill_uniform(Array& a, Rng& rng, float lo, float hi);

// Fills a with N(mean, std^2) samples drawn row by row.
void fill_normal(Array& a, Rng& rng, float mean, float stddev);

}  // namespace xtgrad
