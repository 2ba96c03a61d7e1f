// Vanilla RNN cell, PyTorch's nn.RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu.
#pragma once

#include "layers/cell.hpp"
#include "lib/rng.hpp"

namespace xtgrad {

// The Elman RNN cell with tanh or relu, PyTorch's parameter shapes and initialisation U(-1/sqrt(H), 1/sqrt(H)).
class RNNCell : public Cell {
public:
    // Parameters `<prefix>.weight_ih<suffix>` (H x in), `weight_hh` (H x H), `bias_ih` (H), `bias_hh` (H).
    RNNCell(const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t H, bool relu, Rng& rng);
    std::size_t input_size() const override { return weight_ih.value.shape()[1]; }
    std::size_t hidden_size() const override { return weight_hh.value.shape()[0]; }
    Var project(Var x) override;
    State step(Var x_t, const State& s) override;
    void collect(std::vector<Parameter*>& out) override;

    Parameter weight_ih, weight_hh, bias_ih, bias_hh;
    bool relu;
};

}  // namespace xtgrad
