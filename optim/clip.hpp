// Gradient clipping: by global norm (reporting non-finite norms) and by value.
#pragma once

#include <vector>

#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// What clip_grad_norm saw and did.
struct ClipResult {
    double norm = 0.0;     // global L2 norm of all gradients before clipping
    bool finite = true;    // false: the norm was NaN or Inf and the gradients were left untouched
    bool clipped = false;  // the gradients were scaled down
};

// Global L2 norm of all the parameters' gradients (accumulated in double).
double grad_norm(const std::vector<Parameter*>& params);

// Scales every gradient by max_norm / (norm + 1e-6) when the global norm exceeds max_norm (PyTorch's
// clip_grad_norm_). A NaN or Inf norm is reported (finite = false) and never applied. max_norm > 0.
ClipResult clip_grad_norm(const std::vector<Parameter*>& params, double max_norm);

// Clamps every gradient entry to [-limit, limit]; returns how many entries were clamped. limit > 0.
std::size_t clip_grad_value(const std::vector<Parameter*>& params, float limit);

}  // namespace xtgrad
