// The continuous cache (Grave, Joulin and Usunier 2017, "Improving Neural Language Models with a Continuous
// Cache"): at evaluation, the model's next-word distribution is mixed with one over the words that followed the
// most similar of the last N hidden states.
#pragma once

#include <vector>

#include <xtgrad/apps/lm/data.hpp>
#include <xtgrad/apps/lm/model.hpp>

namespace xtgrad {

// A cache: the last `size` (hidden state, next word) pairs of each stream, a flatness `theta` and a weight
// `lambda`:  p(w | h_t) = (1 - lambda) p_model(w | h_t) + lambda * sum_{i in cache, x_{i+1} = w} e^{theta h_t.h_i}
//                                                                  / sum_{i in cache} e^{theta h_t.h_i}
struct CacheOptions {
    std::size_t size = 0;  // pairs kept per stream (0: no cache)
    double theta = 0.3;
    double lambda = 0.1;
};

// What a model computed over a split once, so that several caches can be scored without running it again:
// per stream, the top layer's hidden state at each position and the log-probability the model gave the word
// that came next.
struct CacheTrace {
    std::size_t streams = 0, positions = 0, width = 0;  // positions per stream
    std::vector<Array> hidden;                             // per stream: (positions x width)
    std::vector<Ids> targets;                              // per stream: the next word at each position
    std::vector<std::vector<double>> model_logp;           // per stream: log p_model(target)
};

// Runs the model over a batchified split (no dropout, state carried, `bptt` steps per window), recording the
// trace; max_batches > 0 stops early.
CacheTrace trace_for_cache(RNNLM& model, const Batched& data, std::size_t bptt, std::size_t max_batches = 0);

// The mean per-token cross-entropy of the traced split with the cache mixed in (the model's own loss when
// size or lambda is 0). Throws ConfigError for lambda outside [0, 1] or theta < 0.
double cache_loss(const CacheTrace& trace, const CacheOptions& options);

// The result of a grid search: every (theta, lambda, loss) tried and the best.
struct CacheTuning {
    CacheOptions best;
    double best_loss = 0.0, model_loss = 0.0;
    struct Point {
        double theta, lambda, loss;
    };
    std::vector<Point> grid;
};

// Tries every theta x lambda on the traced split (the validation split: choose there, report on test).
CacheTuning tune_cache(const CacheTrace& trace, std::size_t size, const std::vector<double>& thetas,
                       const std::vector<double>& lambdas);

}  // namespace xtgrad
