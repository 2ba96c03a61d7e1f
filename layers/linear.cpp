#include <xtgrad/layers/linear.hpp>

#include <cmath>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

Linear::Linear(const std::string& name, std::size_t in, std::size_t out, Rng& rng, bool with_bias)
    : weight(name + ".weight", out, in),
      bias(name + ".bias", Array({1, out}, 0.0f), {out}),
      has_bias(with_bias) {
    const float k = 1.0f / std::sqrt(static_cast<float>(in));
    fill_uniform(weight.value, rng, -k, k);
    if (has_bias) fill_uniform(bias.value, rng, -k, k);
}

Var Linear::operator()(Var x) {
    Tape& t = *x.tape;
    return has_bias ? affine(x, t.param(*w_), t.param(bias)) : matmul_t(x, t.param(*w_));
}

void Linear::tie_weight(Parameter& shared) {
    if (shared.value.shape() != weight.value.shape())
        throw ShapeError(fmt::format("Linear '{}': cannot tie to '{}' of shape {}, the weight is {}", weight.name,
                                     shared.name, shape_str(shared.value), shape_str(weight.value)));
    w_ = &shared;
}

void Linear::collect(std::vector<Parameter*>& out) {
    if (!tied()) out.push_back(&weight);
    if (has_bias) out.push_back(&bias);
}

}  // namespace xtgrad
