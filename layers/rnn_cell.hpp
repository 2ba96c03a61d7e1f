// Vanilla RNN cell, PyTorch's nn.RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu.
#pragma once

#include <xtgrad/layers/cell.hpp>

namespace xtgrad {

// The Elman RNN cell with tanh or relu, PyTorch's parameter shapes and initialisation (see GateCell, 1 gate).
class RNNCell : public GateCell {
public:
    RNNCell(const CellSpec& spec, bool relu, Rng& rng) : GateCell(spec, 1, rng), relu(relu) {}
    StepOut step(const Step& at, Var x_t, const State& s) override;

    bool relu;
};

}  // namespace xtgrad
