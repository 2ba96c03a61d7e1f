// Language-model loss helpers. The loss itself is the fused cross_entropy op of tape/ops.hpp
// (mean or sum over tokens, optional ignored padding id).
#pragma once

#include <cmath>

namespace xtgrad {

// Perplexity from a mean per-token cross-entropy (natural log): exp(loss).
inline double perplexity(double mean_loss) { return std::exp(mean_loss); }

}  // namespace xtgrad
