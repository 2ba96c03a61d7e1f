// apps/examples/: the five published cells and the padded bidirectional-GRU tagger pass the default gradient
// check (stacked, bidirectional, padded batches), a padded batch gives each sequence what it gets alone, and each
// cell computes its paper's equations (closed forms and properties that fail when an equation is wrong).
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include <fmt/core.h>

#include <xtgrad/apps/lm/cellcheck.hpp>

#include "attn_lstm.hpp"
#include "bigru_tagger.hpp"
#include "indrnn.hpp"
#include "ln_lstm.hpp"
#include "peephole_lstm.hpp"
#include "recurrent_checks.hpp"
#include "sru.hpp"

using namespace xtgrad;
using namespace xtgrad::testing;

namespace {

struct Example {
    const char* name;
    CellFactory make;
    CellOptions options;
};

CellOptions window(long k) {
    CellOptions o;
    o.set("k", std::to_string(k));
    return o;
}

std::vector<Example> examples() {
    return {{"PEEPHOLE_LSTM", cell_factory<zoo::PeepholeLSTMCell>(), {}},
            {"LN_LSTM", cell_factory<zoo::LNLSTMCell>(), {}},
            {"INDRNN", cell_factory<zoo::IndRNNCell>(), {}},
            {"SRU", cell_factory<zoo::SRUCell>(), {}},
            {"ATTN_LSTM", cell_factory<zoo::AttnLSTMCell>(), {}},          // k = 8: the memory outlives the window
            {"ATTN_LSTM k=2", cell_factory<zoo::AttnLSTMCell>(), window(2)}};  // states leave the memory
}

// One step of a one-layer cell from a given state: the step's output and its state, as arrays.
struct OneStep {
    Array out;
    std::vector<Array> state;
};
OneStep one_step(Recurrent& rnn, const Array& x, const RecurrentState& init) {
    Tape t;
    Rng unused;
    Ctx c{t, unused, false};
    const RecurrentOutput o = rnn(c, t.constant(x), x.shape()[0], init);
    OneStep r{o.y.value(), {}};
    for (const Var& v : (*o.final)[0]) r.state.push_back(v.value());
    return r;
}

double sigmoid_d(double v) { return 1.0 / (1.0 + std::exp(-v)); }

}  // namespace

TEST_CASE("each example cell passes the default gradcheck: 2 layers, 4 steps, batch 2; bidirectional and padded") {
    std::map<std::string, double> worst;
    for (const Example& e : examples())
        for (bool padded : {false, true}) {
            CellCheckOptions o;  // the defaults of `gradcheck`: 2 layers, 4 steps, batch 2, input 3, hidden 4
            o.options = e.options;
            o.padded = o.bidirectional = padded;
            const GradcheckReport r = check_cell(e.make, o);
            fmt::print("{:<14} {:<28} {}\n", e.name, padded ? "padded, bidirectional" : "", r.summary());
            INFO(fmt::format("{}{}: {}\n{}", e.name, padded ? " padded bidirectional" : "", r.summary(), r.table()));
            CHECK(r.ok);
            worst[e.name] = std::max(worst[e.name], r.max_rel_error);
        }
    for (const auto& [name, err] : worst) fmt::print("worst relative error {:<14} {:.2e}\n", name, err);
}

TEST_CASE("padding: each sequence of a padded batch = the sequence alone, for every example cell") {
    std::uint64_t seed = 80;
    for (const Example& e : examples())
        for (bool bidi : {false, true}) {
            const double gap = padding_gap(e.make, bidi, ++seed, e.options);
            INFO(fmt::format("{}{}: worst difference {}", e.name, bidi ? " bidirectional" : "", gap));
            CHECK(gap <= 1e-6);
        }
}

TEST_CASE("peephole LSTM: with zero peepholes the built-in LSTM; i and f peep at c, o at the new c") {
    Rng ra(5), rb(5);
    Recurrent peep("rnn", cell_factory<zoo::PeepholeLSTMCell>(), 3, 4, 1, 0.0f, false, ra);
    Recurrent lstm("rnn", builtin_cell(CellType::lstm), 3, 4, 1, 0.0f, false, rb);
    auto& cell = static_cast<zoo::PeepholeLSTMCell&>(peep.cell(0));
    for (Parameter* p : {&cell.p_i, &cell.p_f, &cell.p_o}) CHECK(p->value.shape() == Shape{1, 4});
    const std::vector<Parameter*> pp = peep.parameters(), lp = lstm.parameters();
    REQUIRE(pp.size() == lp.size() + 3);
    for (std::size_t k = 0; k < lp.size(); ++k) lp[k]->value = pp[k]->value;  // the same W, U, biases
    const Parameter x = input_param(2, 3, 6);
    const RecurrentState init = random_state(lstm, 2, 7);
    const OneStep with = one_step(peep, x.value, init), plain = [&] {
        for (Parameter* p : {&cell.p_i, &cell.p_f, &cell.p_o}) p->value.fill(0.0f);
        return one_step(peep, x.value, init);
    }();
    const OneStep ref = one_step(lstm, x.value, init);
    CHECK(plain.out == ref.out);
    CHECK(plain.state[1] == ref.state[1]);
    CHECK(max_diff(with.out, ref.out) > 1e-3);

    // with W, U and the biases 0 but g's (0.5), only the peepholes act: i = s(p_i c), f = s(p_f c),
    // c' = f c + i tanh(0.5), o = s(p_o c'), h' = o tanh(c')
    for (std::size_t k = 0; k < lp.size(); ++k) pp[k]->value.fill(0.0f);
    for (std::size_t n = 0; n < 4; ++n) cell.bias_ih.value(0, 8 + n) = 0.5f;
    Rng rp(8);
    for (Parameter* p : {&cell.p_i, &cell.p_f, &cell.p_o}) fill_uniform(p->value, rp, -2.0f, 2.0f);
    const OneStep only = one_step(peep, x.value, init);
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t n = 0; n < 4; ++n) {
            const double c = init.cells[0][1](b, n);
            const double c_new = sigmoid_d(double(cell.p_f.value(0, n)) * c) * c +
                                 sigmoid_d(double(cell.p_i.value(0, n)) * c) * std::tanh(0.5);
            const double h = sigmoid_d(double(cell.p_o.value(0, n)) * c_new) * std::tanh(c_new);
            CHECK(only.state[1](b, n) == doctest::Approx(c_new).epsilon(1e-5));
            CHECK(only.out(b, n) == doctest::Approx(h).epsilon(1e-5));
        }
}

TEST_CASE("layer-normalised LSTM: Ba et al.'s invariance to rescaling the input and recurrent weights") {
    Rng rng(8);
    Recurrent rnn("rnn", cell_factory<zoo::LNLSTMCell>(), 3, 4, 1, 0.0f, false, rng);
    CHECK(rnn.parameters().size() == 8);  // weight_ih, weight_hh and three LayerNorms' gain and shift
    CHECK(rnn.parameters()[2]->name == "rnn.layernorm_i_l0.weight");
    const Parameter x = input_param(3, 3, 9);
    const RecurrentState init = random_state(rnn, 3, 10);
    auto& cell = static_cast<zoo::LNLSTMCell&>(rnn.cell(0));
    cell.weight_ih.value *= 100.0f;  // projections' variances far above eps, so that eps does not matter
    cell.weight_hh.value *= 100.0f;
    const OneStep a = one_step(rnn, x.value, init);
    cell.weight_ih.value *= 7.0f;  // LN(x (7W)^T) = LN(x W^T): the gates, c and h do not move
    cell.weight_hh.value *= 0.25f;
    const OneStep b = one_step(rnn, x.value, init);
    CHECK(max_diff(a.out, b.out) < 1e-5);
    CHECK(max_diff(a.state[1], b.state[1]) < 1e-5);
    cell.ln_c.weight.value *= 2.0f;  // the gain of LN_c reaches h but not the carried c
    const OneStep d = one_step(rnn, x.value, init);
    CHECK(max_diff(a.out, d.out) > 1e-3);
    CHECK(max_diff(a.state[1], d.state[1]) < 1e-5);
}

TEST_CASE("IndRNN: h' = relu(x W^T + b + u * h), against a double-precision loop; u starts in [0, 1)") {
    Rng rng(11);
    Recurrent rnn("rnn", cell_factory<zoo::IndRNNCell>(), 3, 5, 1, 0.0f, false, rng);
    auto& cell = static_cast<zoo::IndRNNCell&>(rnn.cell(0));
    for (float u : cell.weight_hh.value) CHECK((u >= 0.0f && u < 1.0f));
    const Parameter x = input_param(2, 3, 12);
    const RecurrentState init = random_state(rnn, 2, 13);
    const OneStep s = one_step(rnn, x.value, init);
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t n = 0; n < 5; ++n) {
            double pre = cell.bias_ih.value(0, n) + double(cell.weight_hh.value(0, n)) * init.cells[0][0](b, n);
            for (std::size_t i = 0; i < 3; ++i) pre += double(x.value(b, i)) * cell.weight_ih.value(n, i);
            CHECK(s.out(b, n) == doctest::Approx(std::max(pre, 0.0)).epsilon(1e-5));
        }
}

TEST_CASE("SRU: c' = f c + (1 - f) x~, h = r tanh(c') + (1 - r) x, with the highway projected when widths differ") {
    for (std::size_t in : {4, 3}) {  // input as wide as the state (plain highway), then narrower (W_h x)
        Rng rng(14);
        Recurrent rnn("rnn", cell_factory<zoo::SRUCell>(), in, 4, 1, 0.0f, false, rng);
        auto& cell = static_cast<zoo::SRUCell&>(rnn.cell(0));
        REQUIRE(cell.weight_ih.value.shape()[0] == (in == 4 ? 12 : 16));
        const Parameter x = input_param(2, in, 15);
        const RecurrentState init = random_state(rnn, 2, 16);
        const OneStep s = one_step(rnn, x.value, init);
        const Array& W = cell.weight_ih.value;
        for (std::size_t b = 0; b < 2; ++b)
            for (std::size_t n = 0; n < 4; ++n) {
                auto proj = [&](std::size_t row) {
                    double v = 0.0;
                    for (std::size_t i = 0; i < in; ++i) v += double(x.value(b, i)) * W(row, i);
                    return v;
                };
                const double f = sigmoid_d(proj(n) + cell.bias_ih.value(0, n));
                const double r = sigmoid_d(proj(4 + n) + cell.bias_ih.value(0, 4 + n));
                const double c = f * init.cells[0][0](b, n) + (1 - f) * proj(8 + n);
                const double hw = in == 4 ? double(x.value(b, n)) : proj(12 + n);
                CHECK(s.state[0](b, n) == doctest::Approx(c).epsilon(1e-5));
                CHECK(s.out(b, n) == doctest::Approx(r * std::tanh(c) + (1 - r) * hw).epsilon(1e-5));
            }
    }
}

TEST_CASE("attention LSTM: Luong's general score over the last k states, probed; the memory shifts them in") {
    struct Seen : Probes {
        std::map<std::string, std::vector<Array>> v;
        void record(const ProbePoint&, const char* name, Var x) override { v[name].push_back(x.value()); }
    } seen;
    Rng rng(17);
    const std::size_t k = 3, Hd = 4, Bn = 2, Tn = 5;
    Recurrent rnn("rnn", cell_factory<zoo::AttnLSTMCell>(), 3, Hd, 1, 0.0f, false, rng, 0.0f, window(k));
    REQUIRE(rnn.state_parts().size() == 3);
    CHECK(rnn.state_parts()[2].width == k * Hd);
    auto& cell = static_cast<zoo::AttnLSTMCell&>(rnn.cell(0));
    const Parameter x = input_param(Tn * Bn, 3, 18);
    const RecurrentState init = random_state(rnn, Bn, 19);
    Tape t;
    Rng unused;
    Ctx c{t, unused, false, &seen};
    const RecurrentOutput o = rnn(c, t.constant(x.value), Bn, init);
    const std::vector<Array>&attn = seen.v["attn"], &h = seen.v["h"];
    REQUIRE(attn.size() == Tn);
    REQUIRE(h.size() == Tn);
    for (const Array& a : attn)
        for (std::size_t b = 0; b < Bn; ++b) CHECK(a(b, 0) + a(b, 1) + a(b, 2) == doctest::Approx(1.0).epsilon(1e-6));
    // step 0 in double: a_j = softmax_j((h W_a^T) . m_j) over the carried-in memory; out = tanh([sum a_j m_j, h] W_c^T)
    const Array& m = init.cells[0][2];
    const Array& Wa = cell.W_a.value;
    const Array& Wc = cell.W_c.value;
    for (std::size_t b = 0; b < Bn; ++b) {
        double score[k], z = 0.0;
        for (std::size_t j = 0; j < k; ++j) {
            score[j] = 0.0;
            for (std::size_t n = 0; n < Hd; ++n)
                for (std::size_t i = 0; i < Hd; ++i) score[j] += double(h[0](b, i)) * Wa(n, i) * m(b, j * Hd + n);
            z += std::exp(score[j]);
        }
        for (std::size_t n = 0; n < Hd; ++n) {
            double pre = 0.0;
            for (std::size_t i = 0; i < Hd; ++i) {
                double ctx = 0.0;
                for (std::size_t j = 0; j < k; ++j) ctx += std::exp(score[j]) / z * m(b, j * Hd + i);
                pre += ctx * Wc(n, i) + double(h[0](b, i)) * Wc(n, Hd + i);
            }
            CHECK(o.y.value()(b, n) == doctest::Approx(std::tanh(pre)).epsilon(1e-5));
        }
        for (std::size_t j = 0; j < k; ++j) CHECK(attn[0](b, j) == doctest::Approx(std::exp(score[j]) / z).epsilon(1e-5));
    }
    // after the window the memory holds h of the last k steps, oldest first
    const Array& mem = (*o.final)[0][2].value();
    for (std::size_t j = 0; j < k; ++j)
        for (std::size_t b = 0; b < Bn; ++b)
            for (std::size_t n = 0; n < Hd; ++n) CHECK(mem(b, j * Hd + n) == h[Tn - k + j](b, n));
}

TEST_CASE("attention LSTM: a bad window or an unknown option is a ConfigError naming the option") {
    Rng rng(20);
    for (long k : {0L, -3L, 1000L})
        CHECK_THROWS_WITH_AS(Recurrent("rnn", cell_factory<zoo::AttnLSTMCell>(), 3, 4, 1, 0.0f, false, rng, 0.0f,
                                       window(k)),
                             doctest::Contains("cell option k"), ConfigError);
    CellOptions typo;
    typo.set("window", "4");
    CHECK_THROWS_WITH_AS(Recurrent("rnn", cell_factory<zoo::AttnLSTMCell>(), 3, 4, 1, 0.0f, false, rng, 0.0f, typo),
                         doctest::Contains("cell option window: the attention LSTM has only k"), ConfigError);
}

TEST_CASE("bidirectional GRU tagger: default gradcheck on a padded batch; padding changes nothing") {
    Rng rng(21);
    zoo::Truecaser model(128, 3, 4, rng, 0.1f);
    const zoo::TaggedBatch batch({"Ab:c", "dE", "fgHi!"});  // lengths 4, 2, 5
    CHECK(batch.T == 5);
    CHECK(batch.tags[1 * 3 + 1] == 1);   // 'E'
    CHECK(batch.tags[2 * 3 + 1] == -1);  // padding
    Tape tape;
    Rng unused;
    auto loss = [&](Tape& t) {
        Ctx c{t, unused, false};
        return model.loss(c, batch);
    };
    const GradcheckReport r = gradcheck(tape, loss, model.parameters());
    fmt::print("{:<14} {:<28} {}\n", "BIGRU tagger", "padded, 2 layers", r.summary());
    INFO(r.summary(), "\n", r.table());
    CHECK(r.ok);

    // each line's logits and per-line loss are the same alone as in the padded batch
    tape.clear();
    Ctx c{tape, unused, false};
    const Array all = model.forward(c, batch).first.value();
    const std::vector<std::string> lines{"Ab:c", "dE", "fgHi!"};
    for (std::size_t b = 0; b < 3; ++b) {
        Tape alone;
        Ctx ca{alone, unused, false};
        const Array one = model.forward(ca, zoo::TaggedBatch({lines[b]})).first.value();
        CHECK(max_diff(one, sequence_rows(all, 3, b, lines[b].size())) <= 1e-6);
    }
}
