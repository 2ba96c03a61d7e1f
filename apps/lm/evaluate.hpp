// Evaluation of a language model on a split, as the PyTorch example computes it.
#pragma once

#include <cmath>

#include <xtgrad/apps/lm/data.hpp>
#include <xtgrad/apps/lm/model.hpp>

namespace xtgrad {

class Comm;

// Perplexity from a mean per-token cross-entropy (natural log): exp(loss).
inline double perplexity(double mean_loss) { return std::exp(mean_loss); }

// Mean per-token cross-entropy of a model over a batchified split, as the example computes it: the sum over
// windows of len * mean loss, divided by the rows seen, the state carried across windows; no dropout, no
// gradient. max_batches > 0 stops early; `precision` is the matrix products' (Tape::set_precision). Throws
// ConfigError when the split is shorter than two steps.
// With `comm`, the processes of a data-parallel run share the work: each evaluates its contiguous share of the
// streams (share_of), and the result, the same in every process, is the whole batch's (each share's mean weighted
// by its streams); every process must call it. Throws ConfigError when there are fewer streams than processes.
double evaluate(RNNLM& model, const Batched& data, std::size_t bptt, std::size_t max_batches = 0, Comm* comm = nullptr,
                Precision precision = Precision::fp32);

}  // namespace xtgrad
