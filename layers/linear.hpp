// Linear: y = x W^T + b, PyTorch's nn.Linear (weight (out x in), bias (out)).
#pragma once

#include <xtgrad/layers/module.hpp>
#include <xtgrad/lib/rng.hpp>

namespace xtgrad {

// A fully connected layer with PyTorch's layout and default initialisation U(-1/sqrt(in), 1/sqrt(in)).
class Linear : public Module {
public:
    // Parameters are named `<name>.weight` and `<name>.bias`.
    Linear(const std::string& name, std::size_t in, std::size_t out, Rng& rng, bool bias = true);
    Linear(const Linear&) = delete;  // holds a pointer to its own weight
    Linear& operator=(const Linear&) = delete;
    // y = x W^T + b        x: (M x in) -> (M x out)
    Var operator()(Var x);
    // Uses another parameter (e.g. an embedding table) as the weight from now on: weight tying. Its shape must
    // be (out x in); it is then collected by its owner, not by this layer.
    void tie_weight(Parameter& shared);
    bool tied() const { return w_ != &weight; }
    // The weight in use (the tied one, if any).
    Parameter& active_weight() { return *w_; }
    void collect(std::vector<Parameter*>& out) override;

    Parameter weight;  // (out x in), unused when tied
    Parameter bias;    // (1 x out), saved as (out); empty when built without bias
    bool has_bias;

private:
    Parameter* w_ = &weight;
};

}  // namespace xtgrad
