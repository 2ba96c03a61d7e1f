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

Var Dropout::operator()(Ctx& c, Var x, std::size_t batch) const {
    if (!c.training || p_ == 0.0f) return x;
    if (batch == 0 || x.rows() % batch != 0)
        throw ShapeError(fmt::format("Dropout: {} rows are not a whole number of steps of batch {}", x.rows(), batch));
    return dropout(x, p_, c.mask_key(batch));
}

Var Dropout::operator()(Ctx& c, Var x) const {
    if (!c.training || p_ == 0.0f) return x;
    if (c.sharded())
        throw ConfigError("Dropout: the batch is split between processes, so the mask must know each row's stream: "
                          "call Dropout(p)(c, x, batch)");
    return dropout(x, p_, c.rng);
}

LockedDropout::LockedDropout(float p) : p_(checked_rate("LockedDropout", p)) {}

Var LockedDropout::operator()(Ctx& c, Var x, std::size_t batch) const {
    if (!c.training || p_ == 0.0f) return x;
    const Shape s = x.shape();
    if (batch == 0 || s[0] % batch != 0)
        throw ShapeError(fmt::format("LockedDropout: {} rows are not a whole number of steps of batch {}", s[0], batch));
    Var m = c.tape.constant(s, 0.0f);  // the node's own buffer: filled in place, pooled by the tape
    Array& mask = c.tape.node(m).value;
    fill_dropout_mask(mask.data(), batch, s[1], p_, c.mask_key(batch));  // one step's rows: the streams
    const std::size_t step = batch * s[1];
    for (std::size_t r = step; r < mask.size(); r += step) std::copy(mask.data(), mask.data() + step, mask.data() + r);
    return mul(x, m);
}

}  // namespace xtgrad
