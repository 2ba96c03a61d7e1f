// A long-range memory task that LSTM and GRU solve and a vanilla tanh RNN does not, and the mechanism behind it:
// how much gradient reaches the first step. The assertions hold for every trajectory measured (5 seeds, release
// and sanitizer builds): a machine's rounding changes the trajectory as a seed does, so the thresholds sit outside
// the whole measured spread, not at one run's value.
#include <doctest/doctest.h>

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
};

RecallResult train_recall(CellType cell, std::size_t distractors, std::size_t max_steps, std::uint64_t seed,
                          bool train = true) {
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

    auto batch = [&]() {
        for (std::size_t b = 0; b < B; ++b) {
            targets[b] = static_cast<int>(data.below(K));
            ids[b] = targets[b];
            for (std::size_t t = 1; t < T; ++t) ids[t * B + b] = static_cast<int>(K + data.below(D));
        }
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
    for (r.steps = 1; train && r.steps <= max_steps; ++r.steps) {
        batch();
        tape.clear();
        Var logits = forward(tape);
        tape.backward(cross_entropy(logits, targets));
        clip_grad_norm(params, lstm ? 1.0 : 5.0);
        opt.step();
        opt.zero_grad();
        std::size_t correct = 0;
        for (std::size_t b = 0; b < B; ++b) {
            const float* row = logits.value().data() + b * K;
            correct += static_cast<std::size_t>(std::max_element(row, row + K) - row) == static_cast<std::size_t>(targets[b]);
        }
        running = 0.9 * running + 0.1 * static_cast<double>(correct) / B;
        if (running > 0.98) break;
    }

    // accuracy over 8 fresh batches (256 sequences); the gradient flow of the last one
    std::size_t correct = 0;
    for (int k = 0; k < 8; ++k) {
        batch();
        tape.clear();
        Var logits = forward(tape);
        tape.backward(cross_entropy(logits, targets));
        for (std::size_t b = 0; b < B; ++b) {
            const float* row = logits.value().data() + b * K;
            correct += static_cast<std::size_t>(std::max_element(row, row + K) - row) == static_cast<std::size_t>(targets[b]);
        }
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

TEST_CASE("LSTM and GRU recall one of 8 symbols across 50 distractors; a tanh RNN of the same size does not") {
    // Measured over seeds 1-5 (release build): LSTM 0.977-1.000, GRU 1.000 (1105-1248 updates), RNN_TANH 0.219-0.766
    // after 4,000 updates (chance is 0.125). The thresholds below sit outside that whole spread.
    const RecallResult lstm = train_recall(CellType::lstm, 50, 4000, 1);
    report("LSTM", lstm);
    const RecallResult gru = train_recall(CellType::gru, 50, 4000, 1);
    report("GRU", gru);
    const RecallResult rnn = train_recall(CellType::rnn_tanh, 50, 4000, 1);
    report("RNN_TANH", rnn);
    CHECK(lstm.accuracy >= 0.9);
    CHECK(gru.accuracy >= 0.9);
    CHECK(rnn.accuracy < 0.9);
    // after training, the GRU passes gradient back 50 steps (measured 0.8-1.2 of the last step's), the RNN does not
    // (0 - 3e-14)
    CHECK(gru.flow.front() / gru.flow.back() > 1e-3);
    CHECK(rnn.flow.front() / rnn.flow.back() < 1e-8);
}
