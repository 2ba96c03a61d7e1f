// The explicit random generator of xtgrad: seeded, copyable, serialisable; no global state anywhere.
#pragma once

#include <array>
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

// Fills a with U(lo, hi) samples drawn row by row.
void fill_uniform(Array& a, Rng& rng, float lo, float hi);

// Fills a with N(mean, std^2) samples drawn row by row.
void fill_normal(Array& a, Rng& rng, float mean, float stddev);

}  // namespace xtgrad
