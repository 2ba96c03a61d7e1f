// Checks of Recurrent shared by the layer tests and the examples' tests: random inputs and carried states, and the
// padding check (each sequence of a padded batch against the same sequence alone).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include <xtgrad/layers/recurrent.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad::testing {

// A (rows x cols) input with entries U(-1, 1), as a parameter so that gradient checks perturb it.
inline Parameter input_param(std::size_t rows, std::size_t cols, std::uint64_t seed) {
    Rng rng(seed);
    Parameter p("x", Array({rows, cols}));
    fill_uniform(p.value, rng, -1.0f, 1.0f);
    return p;
}

// A non-zero carried state, so that the first step's recurrent weights get a real gradient.
inline RecurrentState random_state(const Recurrent& rnn, std::size_t batch, std::uint64_t seed) {
    Rng rng(seed);
    RecurrentState s = rnn.zero_state(batch);
    for (auto& cell : s.cells)
        for (Array& part : cell) fill_uniform(part, rng, -0.5f, 0.5f);
    return s;
}

// Rows of a time-major (T*batch x F) value that belong to sequence b, for its first `len` steps.
inline Array sequence_rows(const Array& y, std::size_t batch, std::size_t b, std::size_t len) {
    const std::size_t F = y.shape()[1];
    Array out({len, F});
    for (std::size_t t = 0; t < len; ++t)
        for (std::size_t f = 0; f < F; ++f) out(t, f) = y(t * batch + b, f);
    return out;
}

// The largest entrywise |a - b| (the shapes must agree).
inline double max_diff(const Array& a, const Array& b) {
    REQUIRE(a.shape() == b.shape());
    double m = 0.0;
    for (std::size_t k = 0; k < a.size(); ++k) m = std::max(m, std::abs(static_cast<double>(a.data()[k]) - b.data()[k]));
    return m;
}

// Runs one padded batch (T 5, lengths 5, 2, 4, 2 layers, input 3, hidden 4) and each of its sequences alone;
// returns the largest difference of outputs, final states and gradients (inputs, and weights relative to their size
// above 1).
inline double padding_gap(const CellFactory& make, bool bidirectional, std::uint64_t seed,
                          const CellOptions& options = {}) {
    const std::size_t Tn = 5, Bn = 3, L = 2, I = 3, H = 4;
    const Lengths lengths{5, 2, 4};
    Rng rng(seed);
    Recurrent rnn("rnn", make, I, H, L, 0.0f, bidirectional, rng, 0.0f, options);
    Parameter x = input_param(Tn * Bn, I, seed + 1);
    for (std::size_t t = 0; t < Tn; ++t)  // padding holds garbage: it must not matter
        for (std::size_t b = 0; b < Bn; ++b)
            if (t >= lengths[b])
                for (std::size_t i = 0; i < I; ++i) x.value(t * Bn + b, i) = 1e3f;
    const RecurrentState init = random_state(rnn, Bn, seed + 2);
    Array seed_y;
    Rng unused;
    double gap = 0.0;

    // the padded batch
    Tape tape;
    Ctx c{tape, unused, false};
    for (Parameter* p : rnn.parameters()) p->zero_grad();
    x.zero_grad();
    const RecurrentOutput out = rnn(c, tape.param(x), Bn, init, &lengths);
    seed_y = Array(out.y.value().shape());
    fill_uniform(seed_y, rng, -1.0f, 1.0f);
    for (std::size_t t = 0; t < Tn; ++t)
        for (std::size_t b = 0; b < Bn; ++b)
            if (t >= lengths[b])
                for (std::size_t f = 0; f < seed_y.shape()[1]; ++f) CHECK(out.y.value()(t * Bn + b, f) == 0.0f);
    tape.backward(out.y, seed_y);
    const Array y = out.y.value();
    std::vector<std::vector<Array>> fin;
    for (const State& s : *out.final) {
        fin.emplace_back();
        for (const Var& v : s) fin.back().push_back(v.value());
    }
    const Array gx = x.grad;
    std::vector<Array> gw;
    for (Parameter* p : rnn.parameters()) gw.push_back(p->grad);

    // each sequence alone, batch 1, its own length
    std::vector<Array> gw_sum;
    for (Parameter* p : rnn.parameters()) gw_sum.push_back(Array(p->value.shape(), 0.0f));
    for (std::size_t b = 0; b < Bn; ++b) {
        const std::size_t len = lengths[b];
        Parameter xb("x", sequence_rows(x.value, Bn, b, len));
        RecurrentState ib = rnn.zero_state(1);
        for (std::size_t k = 0; k < ib.cells.size(); ++k)
            for (std::size_t p = 0; p < ib.cells[k].size(); ++p)
                for (std::size_t f = 0; f < ib.cells[k][p].shape()[1]; ++f) ib.cells[k][p](0, f) = init.cells[k][p](b, f);
        for (Parameter* p : rnn.parameters()) p->zero_grad();
        tape.clear();
        const RecurrentOutput ob = rnn(c, tape.param(xb), 1, ib);
        tape.backward(ob.y, sequence_rows(seed_y, Bn, b, len));
        gap = std::max(gap, max_diff(ob.y.value(), sequence_rows(y, Bn, b, len)));
        for (std::size_t k = 0; k < fin.size(); ++k)
            for (std::size_t p = 0; p < fin[k].size(); ++p)
                for (std::size_t f = 0; f < fin[k][p].shape()[1]; ++f)
                    gap = std::max(gap, std::abs(static_cast<double>((*ob.final)[k][p].value()(0, f)) - fin[k][p](b, f)));
        gap = std::max(gap, max_diff(xb.grad, sequence_rows(gx, Bn, b, len)));
        std::size_t k = 0;
        for (Parameter* p : rnn.parameters()) gw_sum[k++] += p->grad;
    }
    // weight gradients are sums over the batch in another order: relative to their size above 1 (float32 sums of
    // order 10, as the LN-LSTM's, are 1 ulp = 1e-6 apart)
    for (std::size_t k = 0; k < gw.size(); ++k)
        for (std::size_t i = 0; i < gw[k].size(); ++i) {
            const double a = gw[k].data()[i], b = gw_sum[k].data()[i];
            gap = std::max(gap, std::abs(a - b) / std::max(1.0, std::abs(a)));
        }
    return gap;
}

}  // namespace xtgrad::testing
