#include <xtgrad/layers/recurrent.hpp>

#include <cmath>

#include <fmt/core.h>

#include <xtgrad/layers/gru.hpp>
#include <xtgrad/layers/lstm.hpp>
#include <xtgrad/layers/rnn_cell.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

CellType parse_cell_type(const std::string& name) {
    if (name == "LSTM") return CellType::lstm;
    if (name == "GRU") return CellType::gru;
    if (name == "RNN_TANH") return CellType::rnn_tanh;
    if (name == "RNN_RELU") return CellType::rnn_relu;
    throw ConfigError(fmt::format("unknown model '{}': use LSTM, GRU, RNN_TANH or RNN_RELU", name));
}

std::string cell_type_name(CellType t) {
    switch (t) {
        case CellType::lstm: return "LSTM";
        case CellType::gru: return "GRU";
        case CellType::rnn_tanh: return "RNN_TANH";
        case CellType::rnn_relu: return "RNN_RELU";
    }
    return "?";
}

CellFactory builtin_cell(CellType t) {
    return [t](const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t H,
               Rng& rng) -> std::unique_ptr<Cell> {
        switch (t) {
            case CellType::lstm: return std::make_unique<LSTMCell>(prefix, suffix, in, H, rng);
            case CellType::gru: return std::make_unique<GRUCell>(prefix, suffix, in, H, rng);
            case CellType::rnn_tanh: return std::make_unique<RNNCell>(prefix, suffix, in, H, false, rng);
            case CellType::rnn_relu: return std::make_unique<RNNCell>(prefix, suffix, in, H, true, rng);
        }
        return nullptr;
    };
}

Recurrent::Recurrent(const std::string& name, const CellFactory& make, std::size_t input, std::size_t hidden,
                     std::size_t layers, float dropout, bool bidirectional, Rng& rng)
    : input_(input), hidden_(hidden), layers_(layers), dirs_(bidirectional ? 2 : 1), dropout_(dropout) {
    if (input == 0 || hidden == 0 || layers == 0)
        throw ConfigError(fmt::format("Recurrent '{}': input ({}), hidden ({}) and layers ({}) must be positive", name,
                                      input, hidden, layers));
    if (!(dropout >= 0.0f && dropout < 1.0f))
        throw ConfigError(fmt::format("Recurrent '{}': dropout must be in [0, 1), got {}", name, dropout));
    for (std::size_t l = 0; l < layers; ++l)
        for (std::size_t d = 0; d < dirs_; ++d) {
            const std::string suffix = fmt::format("_l{}{}", l, d ? "_reverse" : "");
            cells_.push_back(make(name, suffix, l == 0 ? input : hidden * dirs_, hidden, rng));
            const Cell& c = *cells_.back();
            if (c.input_size() != (l == 0 ? input : hidden * dirs_) || c.hidden_size() != hidden)
                throw ConfigError(fmt::format("Recurrent '{}': the cell of layer {} takes {} -> {} features, want {} -> {}",
                                              name, l, c.input_size(), c.hidden_size(), l == 0 ? input : hidden * dirs_,
                                              hidden));
        }
}

RecurrentState Recurrent::zero_state(std::size_t batch) const {
    RecurrentState s;
    for (const auto& c : cells_)
        s.cells.push_back({Array({batch, hidden_}, 0.0f), c->has_cell_state() ? Array({batch, hidden_}, 0.0f) : Array()});
    return s;
}

Var Recurrent::operator()(Var x, std::size_t batch, RecurrentState& state, Rng& rng, bool training) {
    Tape& t = *x.tape;
    const Shape xs = x.shape();
    if (batch == 0 || xs[0] % batch != 0 || xs[0] == 0)
        throw ShapeError(fmt::format("Recurrent: input {} is not a whole number of steps of batch {}", shape_str(xs), batch));
    if (xs[1] != input_)
        throw ShapeError(fmt::format("Recurrent: input {} has {} features, the layer takes {}", shape_str(xs), xs[1], input_));
    const std::size_t T = xs[0] / batch;
    if (state.empty()) state = zero_state(batch);
    if (state.cells.size() != cells_.size() || state.cells[0].h.shape()[0] != batch)
        throw ShapeError(fmt::format("Recurrent: carried state is for {} cells of batch {}, this call has {} cells of batch {}",
                                     state.cells.size(), state.cells.empty() ? 0 : state.cells[0].h.shape()[0],
                                     cells_.size(), batch));

    Var input = x;
    for (std::size_t l = 0; l < layers_; ++l) {
        if (l > 0 && training && dropout_ > 0.0f) input = xtgrad::dropout(input, dropout_, rng);
        join_.clear();
        for (std::size_t d = 0; d < dirs_; ++d) {
            Cell& cell = *cells_[l * dirs_ + d];
            StateValues& carried = state.cells[l * dirs_ + d];
            Var proj = cell.project(input);
            State s{t.constant(carried.h), cell.has_cell_state() ? t.constant(carried.c) : Var{}};
            steps_.assign(T, Var{});
            for (std::size_t k = 0; k < T; ++k) {
                const std::size_t step = d == 0 ? k : T - 1 - k;
                s = cell.step(rows(proj, step * batch, (step + 1) * batch), s);
                steps_[step] = s.h;
            }
            if (l + 1 == layers_ && d == 0) top_steps_ = steps_;
            join_.push_back(T == 1 ? steps_[0] : concat_rows(steps_));
            copy_into(carried.h, s.h.value());
            if (cell.has_cell_state()) copy_into(carried.c, s.c.value());
        }
        input = dirs_ == 1 ? join_[0] : concat_cols(join_);
    }
    return input;
}

void Recurrent::collect(std::vector<Parameter*>& out) {
    for (auto& c : cells_) c->collect(out);
}

std::vector<double> gradient_flow(const std::vector<Var>& steps) {
    std::vector<double> norms;
    for (const Var& v : steps) {
        double s = 0.0;
        for (float g : v.grad()) s += static_cast<double>(g) * g;
        norms.push_back(std::sqrt(s));
    }
    return norms;
}

}  // namespace xtgrad
