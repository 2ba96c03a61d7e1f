// The recurrent cell interface: one step from (input, state) to (output, next state), written with tape ops.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <xtgrad/layers/module.hpp>
#include <xtgrad/lib/rng.hpp>
#include <xtgrad/tape/context.hpp>

namespace xtgrad {

// A cell's state at one step: one Var per part, in the order of Cell::state_parts() (h first). A cell may
// declare up to kMaxParts parts of any widths (the LSTM has h and c; a cell attending over its past keeps a
// memory part). Fixed capacity, so stepping allocates nothing.
class State {
public:
    static constexpr std::size_t kMaxParts = 8;

    State() = default;
    // A state of these parts, in order.
    State(std::initializer_list<Var> parts);

    // Number of parts.
    std::size_t size() const { return n_; }
    // Part i.
    Var& operator[](std::size_t i) { return parts_[i]; }
    const Var& operator[](std::size_t i) const { return parts_[i]; }
    // The first part (h).
    Var h() const { return parts_[0]; }
    // Appends a part; throws Error past kMaxParts.
    void push_back(Var v);
    const Var* begin() const { return parts_.data(); }
    const Var* end() const { return parts_.data() + n_; }

private:
    std::array<Var, kMaxParts> parts_{};
    std::size_t n_ = 0;
};

// One part of a cell's state: its name (checkpoints and reports use it: "h", "c") and its width.
struct StatePart {
    std::string name;
    std::size_t width = 0;
};

// What a step returns: the state carried to the next step, and what the step emits (the layer's output at
// this time step, the next layer's input). Built from a State alone, the output is the state's first part.
struct StepOut {
    StepOut(State s) : state(s), out(s[0]) {}  // NOLINT: a State converts implicitly (return {h, c};)
    StepOut(State s, Var output) : state(s), out(output) {}
    State state;
    Var out;
};

// What a cell computes once per window (Cell::project), handed to each of its steps.
struct Window {
    Var x;                          // the projected input, (T*B x ...) time-major: step t gets rows [t*B, (t+1)*B)
    std::array<Var, 4> extra{};     // other per-window values its steps read (a weight with DropConnect applied)
};

// Where a step stands: the forward context, the window's per-window values, the time index, the layer and
// direction. A cell that needs its position (to attend over its past, say) reads it here.
struct Step {
    Ctx& ctx;
    const Window& window;
    std::size_t t;      // time index in the window: 0 is the earliest step, in either direction
    std::size_t k;      // steps this direction has taken in the window before this one (t, or T-1-t when reverse)
    std::size_t T;      // window length
    std::size_t batch;  // rows of x_t and of every state part
    std::size_t layer;  // 0 is the bottom layer
    std::size_t dir;    // 0 forward, 1 reverse

    // The tape the step records on.
    Tape& tape() const { return ctx.tape; }
    // Shows a named intermediate (a gate) to a report; does nothing unless one asked (ctx.probes set).
    void probe(const char* name, Var v) const {
        if (ctx.probes) ctx.probes->record({layer, dir, t}, name, v);
    }
};

// String options for a cell (`--cell-option name=value` on the command line), with typed getters.
class CellOptions {
public:
    // Sets name = value.
    void set(const std::string& name, const std::string& value) { values_[name] = value; }
    // The value of name, or def when unset; throws ConfigError naming the option when it does not parse.
    std::string get(const std::string& name, const std::string& def) const;
    long get(const std::string& name, long def) const;
    double get(const std::string& name, double def) const;
    // Every option set.
    const std::map<std::string, std::string>& all() const { return values_; }

private:
    std::map<std::string, std::string> values_;
};

// Everything a cell's constructor is told: its parameter names, sizes, position in the stack and options.
struct CellSpec {
    std::string prefix = "rnn";  // parameter name prefix
    std::string suffix = "_l0";  // "_l0", "_l1_reverse", ... as in PyTorch
    std::size_t input = 0;       // features per input step
    std::size_t hidden = 0;      // width of the state's first part (h)
    std::size_t layer = 0, dir = 0;
    float weight_drop = 0.0f;    // DropConnect rate on the hidden-to-hidden weights, for cells that support it
    CellOptions options;         // cell-specific settings

    // "<prefix>.<name><suffix>", e.g. name("weight_ih") = "rnn.weight_ih_l0".
    std::string name(const std::string& n) const { return prefix + "." + n + suffix; }
};

// A recurrent cell. Write a new one by deriving from Cell and composing tape ops in step(); it then works in
// Recurrent (stacked, bidirectional, padded batches, truncated BPTT) with gradients for free.
// See docs/custom-cell.md.
class Cell : public Module {
public:
    // Features per input step.
    virtual std::size_t input_size() const = 0;
    // Width of the state's first part (h).
    virtual std::size_t hidden_size() const = 0;
    // Width of what a step emits (StepOut::out); by default h's.
    virtual std::size_t output_size() const { return hidden_size(); }
    // The parts of the state, names and widths; by default only {"h", hidden_size()}.
    virtual std::vector<StatePart> state_parts() const { return {{"h", hidden_size()}}; }
    // Work done once per window on the whole window's input x ((T*B) x input_size(), time-major), typically the
    // input projection x W_ih^T + b_ih as one matrix product, and values the steps share (a dropped weight).
    // The default passes x through.
    virtual Window project(Ctx& c, Var x) {
        (void)c;
        return {x, {}};
    }
    // One time step: x_t is this step's rows of project()'s x (B x ...), s the previous state.
    virtual StepOut step(const Step& at, Var x_t, const State& s) = 0;
};

// Builds the cell of one layer and direction.
using CellFactory = std::function<std::unique_ptr<Cell>(const CellSpec& spec, Rng& rng)>;

// The factory of a cell class constructible as T(const CellSpec&, Rng&).
template <class T>
CellFactory cell_factory() {
    return [](const CellSpec& spec, Rng& rng) -> std::unique_ptr<Cell> { return std::make_unique<T>(spec, rng); };
}

// The built-in cells' common part: PyTorch's four parameters for `gates` gates, `weight_ih` (gates*H x in),
// `weight_hh` (gates*H x H), `bias_ih`, `bias_hh` (gates*H), drawn U(-1/sqrt(H), 1/sqrt(H)) in PyTorch's order;
// the window's input projection in one affine; DropConnect on weight_hh once per window when spec.weight_drop
// > 0 and training (AWD-LSTM's weight drop).
class GateCell : public Cell {
public:
    GateCell(const CellSpec& spec, std::size_t gates, Rng& rng);
    std::size_t input_size() const override { return weight_ih.value.shape()[1]; }
    std::size_t hidden_size() const override { return weight_hh.value.shape()[1]; }
    // x W_ih^T + b_ih for the whole window: (T*B x gates*H); extra[0] is weight_hh after DropConnect, if any.
    Window project(Ctx& c, Var x) override;
    // h W_hh^T + b_hh: (B x gates*H), with the window's dropped weight_hh when there is one.
    Var recurrent(const Step& at, Var h);
    void collect(std::vector<Parameter*>& out) override;

    Parameter weight_ih, weight_hh, bias_ih, bias_hh;
    float weight_drop;
};

}  // namespace xtgrad
