#include "layers/linear.hpp"

#include <cmath>

#include "tape/ops.hpp"

namespace xtgrad {

Linear::Linear(const std::string& name, std::size_t in, std::size_t out, Rng& rng, bool with_bias)
    : weight(name + ".weight", Array({out, in})),
      bias(name + ".bias", Array({1, out}, 0.0f), {out}),
      has_bias(with_bias) {
    const float k = 1.0f / std::sqrt(static_cast<float>(in));
    fill_uniform(weight.value, rng, -k, k);
    if (has_bias) fill_uniform(bias.value, rng, -k, k);
}

Var Linear::operator()(Var x) {
    Tape& t = *x.tape;
    return has_bias ? affine(x, t.param(weight), t.param(bias)) : matmul_t(x, t.param(weight));
}

void Linear::collect(std::vector<Parameter*>& out) {
    out.push_back(&weight);
    if (has_bias) out.push_back(&bias);
}

}  // namespace xtgrad
