// Linear: y = x W^T + b, PyTorch's nn.Linear (weight (out x in), bias (out)).
#pragma once

#include "layers/module.hpp"
#include "lib/rng.hpp"

namespace xtgrad {

// A fully connected layer with PyTorch's layout and default initialisation U(-1/sqrt(in), 1/sqrt(in)).
class Linear : public Module {
public:
    // Parameters are named `<name>.weight` and `<name>.bias`.
    Linear(const std::string& name, std::size_t in, std::size_t out, Rng& rng, bool bias = true);
    // y = x W^T + b        x: (M x in) -> (M x out)
    Var operator()(Var x);
    void collect(std::vector<Parameter*>& out) override;

    Parameter weight;  // (out x in)
    Parameter bias;    // (1 x out), saved as (out); empty when built without bias
    bool has_bias;
};

}  // namespace xtgrad
