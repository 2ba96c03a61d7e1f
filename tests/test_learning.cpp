// Learning with fixed seeds: a long-range memory task that LSTM and GRU solve and a vanilla tanh RNN does not,
// and the gradient-flow measurement behind it.
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

RecallResult train_recall(CellType cell, std::size_t distractors, std::size_t max_steps) {
    constexpr std::size_t K = 8, D = 32, V = K + D, E = 8, H = 32, B = 32;
    const std::size_t T = distractors + 1;
    Rng rng(2024), data(7), drop(1);
    Embedding emb("encoder", V, E, rng);
    Recurrent rnn("rnn", builtin_cell(cell), E, H, 1, 0.0f, false, rng);
    Linear head("decoder", H, K, rng);
    std::vector<Parameter*> params = emb.parameters();
    rnn.collect(params);
    head.collect(params);
    if (cell == CellType::lstm) {
        // The usual practice for long lags (Gers et al. 2000; Jozefowicz et al. 2015): start the forget gate open.
        // With PyTorch's default init (forget gate ~0.5, memory decaying ~0.5^50) the LSTM here stayed at chance
        // for 4,000 updates while the GRU learned; the bias is training set-up, the cell is unchanged.
        auto& c = static_cast<LSTMCell&>(rnn.cell(0));
        for (std::size_t k = H; k < 2 * H; ++k) c.bias_hh.value(0, k) = 3.0f;
    }
    Adam opt(params, 1e-2);
    Tape tape;
    Ids ids(T * B), targets(B);

    auto batch = [&]() {
        for (std::size_t b = 0; b < B; ++b) {
            targets[b] = static_cast<int>(data.below(K));
            ids[b] = targets[b];
            for (std::size_t t = 1; t < T; ++t) ids[t * B + b] = static_cast<int>(K + data.below(D));
        }
    };
    auto forward = [&](Tape& t) {
        RecurrentState s;  // zeros: every sequence stands alone
        Var y = rnn(emb(t, ids), B, s, drop, true);
        Var logits = head(rows(y, (T - 1) * B, T * B));
        return logits;
    };

    RecallResult r;
    double running = 0.0;
    for (r.steps = 1; r.steps <= max_steps; ++r.steps) {
        batch();
        tape.clear();
        Var logits = forward(tape);
        tape.backward(cross_entropy(logits, targets));
        clip_grad_norm(params, 5.0);
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
    r.flow = gradient_flow(rnn.top_steps());
    opt.zero_grad();
    return r;
}

void report(const char* name, const RecallResult& r) {
    fmt::print("{:<9} accuracy {:.3f} after {} updates; |dL/dh_t| at t = 0, T/2, T-1: {:.3e} {:.3e} {:.3e}\n", name,
               r.accuracy, r.steps, r.flow.front(), r.flow[r.flow.size() / 2], r.flow.back());
}

}  // namespace

TEST_CASE("LSTM and GRU recall one of 8 symbols across 50 distractors; a tanh RNN of the same size does not") {
    const RecallResult lstm = train_recall(CellType::lstm, 50, 4000);
    report("LSTM", lstm);
    const RecallResult gru = train_recall(CellType::gru, 50, 4000);
    report("GRU", gru);
    const RecallResult rnn = train_recall(CellType::rnn_tanh, 50, 4000);
    report("RNN_TANH", rnn);

    // Solving means >= 0.9 on 256 fresh sequences (chance is 0.125). The tanh RNN does not get there: within the
    // same budget it stays at 0.2-0.6 depending on rounding (release vs sanitizer builds), well below both.
    CHECK(lstm.accuracy >= 0.9);
    CHECK(gru.accuracy >= 0.9);
    CHECK(rnn.accuracy < 0.9);
    CHECK(rnn.accuracy <= std::min(lstm.accuracy, gru.accuracy) - 0.25);

    // The gradient reaching the first step, relative to the last: vanishes for the RNN, survives in the LSTM.
    const double rnn_ratio = rnn.flow.front() / rnn.flow.back();
    const double lstm_ratio = lstm.flow.front() / lstm.flow.back();
    fmt::print("|dL/dh_0| / |dL/dh_T-1|: RNN_TANH {:.3e}, LSTM {:.3e}\n", rnn_ratio, lstm_ratio);
    CHECK(rnn_ratio < 1e-3);
    CHECK(lstm_ratio > 1e-2);
    CHECK(lstm_ratio > 100 * rnn_ratio);
}
