// LayerNorm: layer normalisation (Ba et al., 2016) as PyTorch's nn.LayerNorm over the last dimension, composed
// from public tape ops (row mean and variance, rsqrt, addcmul); it has no backward code of its own.
#pragma once

#include <string>

#include <xtgrad/layers/module.hpp>

namespace xtgrad {

// Normalises each row of x to zero mean and unit (biased) variance over its features, then scales and shifts
// every feature: y = (x - mean) / sqrt(var + eps) * weight + bias.
class LayerNorm : public Module {
public:
    // Parameters `<name>.weight` (gain, ones) and `<name>.bias` (zeros): (1 x features), saved as (features).
    LayerNorm(const std::string& name, std::size_t features, float eps = 1e-5f);
    LayerNorm(const LayerNorm&) = delete;  // a layer's parameters have one owner
    LayerNorm& operator=(const LayerNorm&) = delete;
    // y = (x - mean_row(x)) * rsqrt(var_row(x) + eps) * weight + bias        x: (M x features) -> (M x features)
    // computed as PyTorch's CPU kernel does, (x r - m r) * weight + bias with r = rsqrt(var + eps)
    Var operator()(Var x);
    // Features per row.
    std::size_t features() const { return weight.value.shape()[1]; }
    // The variance floor added before the square root.
    float eps() const { return eps_; }
    void collect(std::vector<Parameter*>& out) override;

    Parameter weight;  // gain (1 x features)
    Parameter bias;    // shift (1 x features)

private:
    float eps_;
};

}  // namespace xtgrad
