#include <xtgrad/lib/rng.hpp>

#include <cmath>

namespace xtgrad {

namespace {

std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

}  // namespace

void Rng::reseed(std::uint64_t seed) {
    std::uint64_t x = seed;
    for (auto& w : s_) w = splitmix64(x);
}

std::uint64_t Rng::below(std::uint64_t n) {
    // Lemire's rejection on the high word of a 128-bit product.
    unsigned __int128 m = static_cast<unsigned __int128>(next_u64()) * n;
    auto low = static_cast<std::uint64_t>(m);
    if (low < n) {
        const std::uint64_t threshold = (0 - n) % n;
        while (low < threshold) {
            m = static_cast<unsigned __int128>(next_u64()) * n;
            low = static_cast<std::uint64_t>(m);
        }
    }
    return static_cast<std::uint64_t>(m >> 64);
}

float Rng::normal() {
    // u1 in (0, 1] so that log(u1) is finite.
    const double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

void bernoulli_row(float* out, std::size_t n, std::uint64_t seed, std::uint64_t row, float p, float keep) {
    const std::uint64_t threshold = bernoulli_threshold(p);
    const std::uint64_t first = row * ((n + 1) / 2);
    const std::size_t pairs = n / 2;
    for (std::size_t j = 0; j < pairs; ++j) {  // one 64-bit draw per two entries: the loop vectorises
        const std::uint64_t h = counter_bits(seed, first + j);
        out[2 * j] = (h & 0xffffffffULL) < threshold ? 0.0f : keep;
        out[2 * j + 1] = (h >> 32) < threshold ? 0.0f : keep;
    }
    if (n % 2) out[n - 1] = (counter_bits(seed, first + pairs) & 0xffffffffULL) < threshold ? 0.0f : keep;
}

void fill_dropout_mask(float* m, std::size_t rows, std::size_t cols, float p, const MaskKey& key) {
    const float keep = 1.0f / (1.0f - p);
    for (std::size_t r = 0; r < rows; ++r) bernoulli_row(m + r * cols, cols, key.seed, key.global_row(r), p, keep);
}

void fill_uniform(Array& a, Rng& rng, float lo, float hi) {
    for (float& v : a) v = rng.uniform(lo, hi);
}

void fill_normal(Array& a, Rng& rng, float mean, float stddev) {
    for (float& v : a) v = mean + stddev * rng.normal();
}

}  // namespace xtgrad
