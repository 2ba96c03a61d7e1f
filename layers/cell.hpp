// The recurrent cell interface: a step from (input, state) to the next state, written with tape ops.
#pragma once

#include <xtgrad/layers/module.hpp>
#include <xtgrad/lib/rng.hpp>

namespace xtgrad {

// The state of a cell at one step: h, and c for cells with a second state (the LSTM's memory cell).
struct State {
    Var h;
    Var c;  // empty (no tape) for cells with one state
};

// The plain values of a State, carried from one window to the next: no tape, so no gradient crosses over.
struct StateValues {
    Array h;
    Array c;  // empty for cells with one state
};

// A recurrent cell. Write a new one by deriving from Cell and composing tape ops in step(); it then works in
// Recurrent (stacked, bidirectional, truncated BPTT) with gradients for free. See docs/custom-cell.md.
class Cell : public Module {
public:
    // Features per input step.
    virtual std::size_t input_size() const = 0;
    // Features of h (and of c).
    virtual std::size_t hidden_size() const = 0;
    // Whether the state has a second part c.
    virtual bool has_cell_state() const { return false; }
    // Work done once per window on the whole window's input x ((T*B) x input, time-major), typically the input
    // projection x W_ih^T + b_ih in one matrix product. The default passes x through.
    virtual Var project(Var x) { return x; }
    // One time step: x_t is this step's rows of project()'s output, (B x ...); returns the next state.
    virtual State step(Var x_t, const State& s) = 0;
};

// The built-in cells' common part: PyTorch's four parameters for `gates` gates, named
// `<prefix>.weight_ih<suffix>` (gates*H x in), `weight_hh` (gates*H x H), `bias_ih`, `bias_hh` (gates*H), drawn
// U(-1/sqrt(H), 1/sqrt(H)) in PyTorch's order; the window's input projection in one affine.
class GateCell : public Cell {
public:
    GateCell(const std::string& prefix, const std::string& suffix, std::size_t gates, std::size_t in, std::size_t H,
             Rng& rng);
    std::size_t input_size() const override { return weight_ih.value.shape()[1]; }
    std::size_t hidden_size() const override { return weight_hh.value.shape()[1]; }
    // x W_ih^T + b_ih for the whole window: (T*B x gates*H)
    Var project(Var x) override;
    // h W_hh^T + b_hh: (B x gates*H)
    Var recurrent(Var h);
    void collect(std::vector<Parameter*>& out) override;

    Parameter weight_ih, weight_hh, bias_ih, bias_hh;
};

}  // namespace xtgrad
