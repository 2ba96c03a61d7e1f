#include <xtgrad/layers/recurrent.hpp>

#include <cmath>

#include <fmt/core.h>

#include <xtgrad/layers/dropout.hpp>
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
    throw ConfigError(fmt::format("unknown cell '{}': the built-in cells are LSTM, GRU, RNN_TANH and RNN_RELU", name));
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
    switch (t) {
        case CellType::lstm: return cell_factory<LSTMCell>();
        case CellType::gru: return cell_factory<GRUCell>();
        case CellType::rnn_tanh:
        case CellType::rnn_relu:
            return [relu = t == CellType::rnn_relu](const CellSpec& s, Rng& rng) -> std::unique_ptr<Cell> {
                return std::make_unique<RNNCell>(s, relu, rng);
            };
    }
    return nullptr;
}

void RecurrentState::assign(const RecurrentOutput& out) {
    const std::vector<State>& fin = *out.final;
    cells.resize(fin.size());
    for (std::size_t k = 0; k < fin.size(); ++k) {
        cells[k].resize(fin[k].size());
        for (std::size_t p = 0; p < fin[k].size(); ++p) copy_into(cells[k][p], fin[k][p].value());
    }
}

Recurrent::Recurrent(const std::string& name, const CellFactory& make, std::size_t input, std::size_t hidden,
                     std::size_t layers, float dropout, bool bidirectional, Rng& rng, float weight_drop,
                     const CellOptions& options)
    : input_(input), hidden_(hidden), output_(0), layers_(layers), dirs_(bidirectional ? 2 : 1), dropout_(dropout) {
    if (input == 0 || hidden == 0 || layers == 0)
        throw ConfigError(fmt::format("Recurrent '{}': input ({}), hidden ({}) and layers ({}) must be positive", name,
                                      input, hidden, layers));
    if (!(dropout >= 0.0f && dropout < 1.0f))
        throw ConfigError(fmt::format("Recurrent '{}': dropout must be in [0, 1), got {}", name, dropout));
    if (!make) throw ConfigError(fmt::format("Recurrent '{}': no cell factory", name));
    for (std::size_t l = 0; l < layers; ++l)
        for (std::size_t d = 0; d < dirs_; ++d) {
            CellSpec spec;
            spec.prefix = name;
            spec.suffix = fmt::format("_l{}{}", l, d ? "_reverse" : "");
            spec.input = l == 0 ? input : output_ * dirs_;
            spec.hidden = hidden;
            spec.layer = l;
            spec.dir = d;
            spec.weight_drop = weight_drop;
            spec.options = options;
            cells_.push_back(make(spec, rng));
            if (!cells_.back()) throw ConfigError(fmt::format("Recurrent '{}': the cell factory returned no cell", name));
            const Cell& c = *cells_.back();
            if (l == 0 && d == 0) {
                output_ = c.output_size();
                parts_ = c.state_parts();
                if (output_ == 0 || parts_.empty() || parts_.size() > State::kMaxParts)
                    throw ConfigError(fmt::format("Recurrent '{}': the cell must emit at least one feature and have "
                                                  "1 to {} state parts (has {})", name, State::kMaxParts, parts_.size()));
            }
            if (c.input_size() != spec.input || c.hidden_size() != hidden || c.output_size() != output_)
                throw ConfigError(fmt::format(
                    "Recurrent '{}': the cell of layer {} takes {} features to hidden {} and output {}; the stack "
                    "needs {}, {} and {}", name, l, c.input_size(), c.hidden_size(), c.output_size(), spec.input,
                    hidden, output_));
        }
}

RecurrentState Recurrent::zero_state(std::size_t batch) const {
    RecurrentState s;
    s.cells.resize(cells_.size());
    for (auto& cell : s.cells)
        for (const StatePart& p : parts_) cell.push_back(Array({batch, p.width}, 0.0f));
    return s;
}

namespace {

// The checks of a step's result, with messages naming the cell and the part.
void check_step(const StepOut& o, const Cell& cell, const std::vector<StatePart>& parts, std::size_t batch,
                std::size_t layer) {
    if (o.state.size() != parts.size())
        throw ShapeError(fmt::format("Recurrent: the cell of layer {} returned {} state parts, it declares {}", layer,
                                     o.state.size(), parts.size()));
    for (std::size_t p = 0; p < parts.size(); ++p) {
        const Shape s = o.state[p].shape();
        if (s[0] != batch || s[1] != parts[p].width)
            throw ShapeError(fmt::format("Recurrent: the cell of layer {} returned state part '{}' of shape {}, want "
                                         "({} x {})", layer, parts[p].name, shape_str(s), batch, parts[p].width));
    }
    const Shape s = o.out.shape();
    if (s[0] != batch || s[1] != cell.output_size())
        throw ShapeError(fmt::format("Recurrent: the cell of layer {} emitted {}, want ({} x {})", layer, shape_str(s),
                                     batch, cell.output_size()));
}

}  // namespace

RecurrentOutput Recurrent::operator()(Ctx& c, Var x, std::size_t batch, const RecurrentState& init,
                                      const Lengths* lengths) {
    Tape& t = c.tape;
    const Shape xs = x.shape();
    if (batch == 0 || xs[0] % batch != 0 || xs[0] == 0)
        throw ShapeError(fmt::format("Recurrent: input {} is not a whole number of steps of batch {}", shape_str(xs), batch));
    if (xs[1] != input_)
        throw ShapeError(fmt::format("Recurrent: input {} has {} features, the layer takes {}", shape_str(xs), xs[1], input_));
    const std::size_t T = xs[0] / batch;
    if (!init.empty()) {
        if (init.cells.size() != cells_.size())
            throw ShapeError(fmt::format("Recurrent: carried state has {} cells, the layer {}", init.cells.size(),
                                         cells_.size()));
        for (std::size_t k = 0; k < cells_.size(); ++k) {
            if (init.cells[k].size() != parts_.size())
                throw ShapeError(fmt::format("Recurrent: carried state of cell {} has {} parts, the cell declares {}",
                                             k, init.cells[k].size(), parts_.size()));
            for (std::size_t p = 0; p < parts_.size(); ++p)
                if (shape_of(init.cells[k][p]) != Shape{batch, parts_[p].width})
                    throw ShapeError(fmt::format("Recurrent: carried state '{}' of cell {} is {}, this call needs "
                                                 "({} x {})", parts_[p].name, k, shape_str(init.cells[k][p]), batch,
                                                 parts_[p].width));
        }
    }

    // Padding: per time step a (B x 1) 0/1 mask of the real sequences; none where all are real.
    std::vector<Var>& keep = t.scratch<std::vector<Var>>();
    keep.assign(lengths ? T : 0, Var{});
    const Var zero = lengths ? t.constant({1, 1}, 0.0f) : Var{};
    if (lengths) {
        if (lengths->size() != batch)
            throw ShapeError(fmt::format("Recurrent: {} lengths for a batch of {}", lengths->size(), batch));
        for (std::size_t b = 0; b < batch; ++b)
            if ((*lengths)[b] > T)
                throw ShapeError(fmt::format("Recurrent: sequence {} has length {}, the window {} steps", b,
                                             (*lengths)[b], T));
        for (std::size_t s = 0; s < T; ++s) {
            bool all = true;
            for (std::size_t b = 0; b < batch; ++b) all = all && s < (*lengths)[b];
            if (all) continue;
            keep[s] = t.constant({batch, 1}, 1.0f);
            Array& k = t.node(keep[s]).value;
            for (std::size_t b = 0; b < batch; ++b)
                if (s >= (*lengths)[b]) k(b, 0) = 0.0f;
        }
    }

    std::vector<State>& fin = t.scratch<std::vector<State>>();
    std::vector<Var>& top = t.scratch<std::vector<Var>>();
    std::vector<Var>& outs = t.scratch<std::vector<Var>>();
    std::vector<Var>& join = t.scratch<std::vector<Var>>();
    fin.assign(cells_.size(), State{});
    Var input = x;
    for (std::size_t l = 0; l < layers_; ++l) {
        if (l > 0 && c.training && dropout_ > 0.0f)
            input = locked_dropout ? LockedDropout(dropout_)(c, input, batch) : Dropout(dropout_)(c, input, batch);
        join.clear();
        for (std::size_t d = 0; d < dirs_; ++d) {
            const std::size_t ci = l * dirs_ + d;
            Cell& cell = *cells_[ci];
            const Window w = cell.project(c, input);
            State s;
            for (std::size_t p = 0; p < parts_.size(); ++p)
                s.push_back(init.empty() ? t.constant({batch, parts_[p].width}, 0.0f) : t.constant(init.cells[ci][p]));
            outs.assign(T, Var{});
            for (std::size_t k = 0; k < T; ++k) {
                const std::size_t step = d == 0 ? k : T - 1 - k;
                const Step at{c, w, step, k, T, batch, l, d};
                const StepOut o = cell.step(at, rows(w.x, step * batch, (step + 1) * batch), s);
                if (k == 0) check_step(o, cell, parts_, batch, l);
                if (lengths && keep[step].tape) {  // padded rows keep their state and emit 0
                    for (std::size_t p = 0; p < parts_.size(); ++p) s[p] = where(keep[step], o.state[p], s[p]);
                    outs[step] = where(keep[step], o.out, zero);
                } else {
                    s = o.state;
                    outs[step] = o.out;
                }
                if (c.probes)
                    for (std::size_t p = 0; p < parts_.size(); ++p) c.probes->record({l, d, step}, parts_[p].name.c_str(), s[p]);
            }
            if (l + 1 == layers_ && d == 0) top = outs;
            join.push_back(T == 1 ? outs[0] : concat_rows(outs));
            fin[ci] = s;
        }
        input = dirs_ == 1 ? join[0] : concat_cols(join);
    }
    return {input, &fin, &top};
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
