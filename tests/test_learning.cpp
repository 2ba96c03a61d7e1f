// A long-range memory task that LSTM and GRU solve and a vanilla tanh RNN does not, and the mechanism behind it:
// how much gradient reaches the first step. The assertions hold for every trajectory measured (5 seeds, release
// and sanitizer builds): a machine's rounding changes the trajectory as a seed does, so the thresholds sit outside
// the whole measured spread, not at one run's value.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>

#include <fmt/core.h>

#include <xtgrad/layers/embedding.hpp>
#include <xtgrad/layers/linear.hpp>
#include <xtgrad/layers/recurrent.hpp>
#include <xtgrad/layers/lstm.hpp>
#include <xtgrad/optim/clip.hpp>
#include <xtgrad/optim/optimizer.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

namespace {

// Recall: the first token is one of K symbols, then `distractors` random tokens from D others; after the last
// one the model must name the first symbol. Chance accuracy is 1/K.
struct RecallResult {
    double accuracy = 0.0;      // over 256 fresh sequences, after training
    std::size_t steps = 0;      // updates done
    std::vector<double> flow;   // |d loss / d h_t| for each step t, on the evaluation batch
    std::vector<double> accuracy_at;  // at each of the `probes` update counts, on 128 sequences of another stream
};

RecallResult train_recall(CellType cell, std::size_t distractors, std::size_t max_steps, std::uint64_t seed,
                          bool train = true, const std::vector<std::size_t>& probes = {}) {
    constexpr std::size_t K = 8, D = 32, V = K + D, E = 8, H = 32, B = 32;
    const std::size_t T = distractors + 1;
    Rng rng(seed), data(seed + 7), drop(seed + 1);
    Embedding emb("encoder", V, E, rng);
    Recurrent rnn("rnn", builtin_cell(cell), E, H, 1, 0.0f, false, rng);
    Linear head("decoder", H, K, rng);
    std::vector<Parameter*> params = emb.parameters();
    rnn.collect(params);
    head.collect(params);
    if (cell == CellType::lstm) {
        // The usual practice for long lags (Gers et al. 2000; Jozefowicz et al. 2015): start the forget gate open.
        // With PyTorch's default init (forget gate ~0.5, memory decaying ~0.5^50) the LSTM here stays at chance
        // for 4,000 updates while the GRU learns; with bias 3 and Adam 1e-2 it solved 2 of 5 seeds, with bias 5,
        // Adam 3e-3 and clipping at 1 all 5 (>= 0.977 in 208-1355 updates). Training set-up; the cell is unchanged.
        auto& c = static_cast<LSTMCell&>(rnn.cell(0));
        for (std::size_t k = H; k < 2 * H; ++k) c.bias_hh.value(0, k) = 5.0f;
    }
    const bool lstm = cell == CellType::lstm;
    Adam opt(params, lstm ? 3e-3 : 1e-2);
    Tape tape;
    Ids ids(T * B), targets(B);

    auto batch = [&](Rng& from) {
        for (std::size_t b = 0; b < B; ++b) {
            targets[b] = static_cast<int>(from.below(K));
            ids[b] = targets[b];
            for (std::size_t t = 1; t < T; ++t) ids[t * B + b] = static_cast<int>(K + from.below(D));
        }
    };
    auto correct_of = [&](const Var& logits) {
        std::size_t correct = 0;
        for (std::size_t b = 0; b < B; ++b) {
            const float* row = logits.value().data() + b * K;
            correct += static_cast<std::size_t>(std::max_element(row, row + K) - row) == static_cast<std::size_t>(targets[b]);
        }
        return correct;
    };
    std::vector<Var> steps;
    auto forward = [&](Tape& t) {
        Ctx c{t, drop, true};
        const RecurrentOutput out = rnn(c, emb(c, ids), B);  // zero state: every sequence stands alone
        steps = *out.top;
        return head(rows(out.y, (T - 1) * B, T * B));
    };

    RecallResult r;
    double running = 0.0;
    std::size_t next_probe = 0;
    for (r.steps = 1; train && r.steps <= max_steps; ++r.steps) {
        batch(data);
        tape.clear();
        Var logits = forward(tape);
        tape.backward(cross_entropy(logits, targets));
        clip_grad_norm(params, lstm ? 1.0 : 5.0);
        opt.step();
        opt.zero_grad();
        running = 0.9 * running + 0.1 * static_cast<double>(correct_of(logits)) / B;
        if (next_probe < probes.size() && r.steps == probes[next_probe]) {  // measurement only: its own stream
            Rng probe_data(seed + 1000 + r.steps);
            std::size_t c = 0;
            for (int k = 0; k < 4; ++k) {
                batch(probe_data);
                tape.clear();
                c += correct_of(forward(tape));
            }
            r.accuracy_at.push_back(static_cast<double>(c) / (4 * B));
            ++next_probe;
        }
        if (running > 0.98) break;
    }
    for (; next_probe < probes.size(); ++next_probe) r.accuracy_at.push_back(-1.0);  // stopped early: solved

    // accuracy over 8 fresh batches (256 sequences); the gradient flow of the last one
    std::size_t correct = 0;
    for (int k = 0; k < 8; ++k) {
        batch(data);
        tape.clear();
        Var logits = forward(tape);
        tape.backward(cross_entropy(logits, targets));
        correct += correct_of(logits);
    }
    r.accuracy = static_cast<double>(correct) / (8 * B);
    r.flow = gradient_flow(steps);
    opt.zero_grad();
    return r;
}

void report(const char* name, const RecallResult& r) {
    fmt::print("{:<9} accuracy {:.3f} after {} updates; |dL/dh_t| at t = 0, T/2, T-1: {:.3e} {:.3e} {:.3e}\n", name,
               r.accuracy, r.steps, r.flow.front(), r.flow[r.flow.size() / 2], r.flow.back());
}

}  // namespace

TEST_CASE("mechanism: at initialisation, gradient reaches 50 steps back through an open LSTM, not a tanh RNN") {
    // No training: the ratio |dL/dh_0| / |dL/dh_T-1| of fresh models on a fresh batch, 3 seeds each. Measured:
    // LSTM (forget gate open) 0.14-0.22, RNN_TANH 3e-14 - 9e-13. A fresh GRU (update gate ~0.5) is at 2e-10 - 4e-10:
    // it passes gradient back only once it has learnt to hold its gate (see the next case).
    std::vector<double> lstm, gru, rnn;
    for (std::uint64_t seed : {1, 2, 3}) {
        auto ratio = [&](CellType c) {
            const RecallResult r = train_recall(c, 50, 0, seed, false);
            return r.flow.front() / r.flow.back();
        };
        lstm.push_back(ratio(CellType::lstm));
        gru.push_back(ratio(CellType::gru));
        rnn.push_back(ratio(CellType::rnn_tanh));
    }
    fmt::print("|dL/dh_0| / |dL/dh_T-1| at init, seeds 1-3: LSTM {:.2e} {:.2e} {:.2e}, GRU {:.2e} {:.2e} {:.2e}, "
               "RNN_TANH {:.2e} {:.2e} {:.2e}\n", lstm[0], lstm[1], lstm[2], gru[0], gru[1], gru[2], rnn[0], rnn[1], rnn[2]);
    for (std::size_t k = 0; k < 3; ++k) {
        CHECK(rnn[k] < 1e-8);
        CHECK(lstm[k] > 1e-3);
    }
}

namespace {

// The middle of three values.
double median3(std::vector<double> v) {
    REQUIRE(v.size() == 3);
    std::sort(v.begin(), v.end());
    return v[1];
}

constexpr std::size_t kBudget = 2000;  // updates per training run

}  // namespace

TEST_CASE("LSTM and GRU recall one of 8 symbols across 50 distractors; a tanh RNN of the same size does not") {
    // Three seeds per cell, 2,000 updates at most, and every property asserted on the median: a machine's
    // rounding sends a trajectory elsewhere as a seed does, so no single run decides. Measured over seeds 1-10
    // (release build, AVX-512 machine; the spread case below prints them for any build): LSTM solves in 202-1355 updates (accuracy
    // 0.977-1.000), GRU in 748-1363 (1.000); RNN_TANH stays at 0.07-0.56 up to 2,000 updates (chance 0.125; by 4,000
    // one seed reached 0.81). After training the GRU passes back 1.0-1.3 of the last step's gradient over 50 steps,
    // the RNN 0-2e-12. The thresholds sit outside those spreads by wide margins.
    std::vector<double> lstm, gru, rnn, gru_flow, rnn_flow;
    for (std::uint64_t seed : {1, 2, 3}) {
        const RecallResult l = train_recall(CellType::lstm, 50, kBudget, seed);
        report("LSTM", l);
        const RecallResult g = train_recall(CellType::gru, 50, kBudget, seed);
        report("GRU", g);
        const RecallResult r = train_recall(CellType::rnn_tanh, 50, kBudget, seed);
        report("RNN_TANH", r);
        lstm.push_back(l.accuracy);
        gru.push_back(g.accuracy);
        rnn.push_back(r.accuracy);
        gru_flow.push_back(g.flow.front() / g.flow.back());
        rnn_flow.push_back(r.flow.front() / r.flow.back());
    }
    CHECK(median3(lstm) >= 0.9);
    CHECK(median3(gru) >= 0.9);
    CHECK(median3(rnn) < 0.9);
    // after training the GRU has learnt to pass gradient back 50 steps; the RNN has not
    CHECK(median3(gru_flow) > 1e-3);
    CHECK(median3(rnn_flow) < 1e-8);
}

TEST_CASE("spread: the learning measurements over many seeds (--no-skip; XTGRAD_LEARNING_FIRST, _SEEDS)" * doctest::skip()) {
    // The quantities the cases above assert, per seed, to measure their spread on a machine and a build.
    const char* n = std::getenv("XTGRAD_LEARNING_SEEDS");
    const char* f = std::getenv("XTGRAD_LEARNING_FIRST");
    const std::uint64_t first = f ? std::strtoull(f, nullptr, 10) : 1, seeds = n ? std::strtoull(n, nullptr, 10) : 8;
    const std::vector<std::size_t> probes = {500, 1000, 1500};
    for (std::uint64_t seed = first; seed < first + seeds; ++seed) {
        for (CellType c : {CellType::lstm, CellType::gru, CellType::rnn_tanh}) {
            const RecallResult r = train_recall(c, 50, kBudget, seed, true, probes);
            std::string at;
            for (double a : r.accuracy_at) at += fmt::format(" {:.3f}", a);
            fmt::print("seed {} {:<9} accuracy {:.3f} after {:4d} updates, flow ratio {:.2e}; at 500, 1000, 1500:{}\n", seed,
                       cell_type_name(c), r.accuracy, r.steps, r.flow.front() / r.flow.back(), at);
            std::fflush(stdout);
        }
        auto ratio = [&](CellType c) {
            const RecallResult r = train_recall(c, 50, 0, seed, false);
            return r.flow.front() / r.flow.back();
        };
        fmt::print("seed {} at init: LSTM {:.2e} GRU {:.2e} RNN_TANH {:.2e}\n", seed, ratio(CellType::lstm), ratio(CellType::gru),
                   ratio(CellType::rnn_tanh));
    }
}
