#include <xtgrad/layers/layer_norm.hpp>

#include <cmath>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

LayerNorm::LayerNorm(const std::string& name, std::size_t features, float eps)
    : weight(name + ".weight", Array({1, features}, 1.0f), {features}),
      bias(name + ".bias", Array({1, features}, 0.0f), {features}),
      eps_(eps) {
    if (features == 0) throw ConfigError(fmt::format("LayerNorm '{}': features must be positive", name));
    if (!(eps > 0.0f) || !std::isfinite(eps))
        throw ConfigError(fmt::format("LayerNorm '{}': eps must be positive and finite, got {}", name, eps));
}

Var LayerNorm::operator()(Var x) {
    const Array& X = x.value();  // throws for an empty or stale handle
    if (X.shape()[1] != features())
        throw ShapeError(fmt::format("LayerNorm '{}': input {} has {} features per row, the layer normalises {}",
                                     weight.name, shape_str(X), X.shape()[1], features()));
    Tape& t = *x.tape;
    Var r = rsqrt(var(x, 1) + eps_);                       // (M x 1): 1 / standard deviation
    Var n = addcmul(-(mean(x, 1) * r), x, r);              // (M x N): x r - m r = (x - m) r
    return addcmul(t.param(bias), n, t.param(weight));    // (M x N): bias + n weight
}

void LayerNorm::collect(std::vector<Parameter*>& out) { out.insert(out.end(), {&weight, &bias}); }

}  // namespace xtgrad
