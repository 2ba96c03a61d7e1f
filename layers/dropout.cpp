#include <xtgrad/layers/dropout.hpp>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

namespace {
float checked_rate(const char* who, float p) {
    if (!(p >= 0.0f && p < 1.0f)) throw ConfigError(fmt::format("{}: rate must be in [0, 1), got {}", who, p));
    return p;
}
}  // namespace

Dropout::Dropout(float p) : p_(checked_rate("Dropout", p)) {}

Var Dropout::operator()(Var x, Rng& rng, bool training) const {
    return training && p_ > 0.0f ? dropout(x, p_, rng) : x;
}

LockedDropout::LockedDropout(float p) : p_(checked_rate("LockedDropout", p)) {}

Var LockedDropout::operator()(Var x, std::size_t batch, Rng& rng, bool training) {
    if (!training || p_ == 0.0f) return x;
    const Shape s = x.shape();
    if (batch == 0 || s[0] % batch != 0)
        throw ShapeError(fmt::format("LockedDropout: {} rows are not a whole number of steps of batch {}", s[0], batch));
    ensure_shape(mask_, s);
    const float keep = 1.0f / (1.0f - p_);
    const std::size_t step = batch * s[1];
    for (std::size_t k = 0; k < step; ++k) mask_.data()[k] = rng.uniform() < p_ ? 0.0f : keep;
    for (std::size_t r = step; r < mask_.size(); r += step) std::copy(mask_.data(), mask_.data() + step, mask_.data() + r);
    return mul(x, x.tape->constant(mask_));
}

}  // namespace xtgrad
