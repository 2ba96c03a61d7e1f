// The differentiable ops of xtgrad. Each is defined once, in tape/ops.cpp, forward and backward side by side.
// Shapes: every value is a 2-D (rows x cols) matrix; B = batch, H = hidden, V = vocabulary, E = embedding.
#pragma once

#include <vector>

#include <xtgrad/lib/rng.hpp>
#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// ---- elementwise, with broadcasting of a size-1 dimension ((1 x N) bias rows, (M x 1) columns, (1 x 1))

// y = a + b
Var add(Var a, Var b);
// y = a - b
Var sub(Var a, Var b);
// y = a * b (elementwise)
Var mul(Var a, Var b);
// y = c * x
Var scale(Var x, float c);
// y = x + c
Var add_scalar(Var x, float c);
// y = -x
Var neg(Var x);

// ---- matrix products (BLAS sgemm)

// y = a b            a: (M x K), b: (K x N) -> (M x N)
Var matmul(Var a, Var b);
// y = a b^T          a: (M x K), b: (N x K) -> (M x N)
Var matmul_t(Var a, Var b);
// y = x W^T + b      x: (M x K), W: (N x K) (PyTorch's (out x in) layout), b: (1 x N) -> (M x N)
Var affine(Var x, Var W, Var b);

// ---- nonlinearities (vectorised)

// y = 1 / (1 + exp(-x))
Var sigmoid(Var x);
// y = tanh(x)
Var tanh(Var x);
// y = max(x, 0)
Var relu(Var x);
// y = exp(x)
Var exp(Var x);
// y = log(x)
Var log(Var x);

// ---- reductions

// y = sum of all entries -> (1 x 1)
Var sum(Var x);
// y = mean of all entries -> (1 x 1)
Var mean(Var x);

// ---- slicing and joining (copies)

// y = x[:, c0:c1]
Var cols(Var x, std::size_t c0, std::size_t c1);
// y = x[r0:r1, :]
Var rows(Var x, std::size_t r0, std::size_t r1);
// y = [x0 x1 ...] side by side; all inputs have the same rows
Var concat_cols(const std::vector<Var>& xs);
// y = [x0; x1; ...] stacked; all inputs have the same cols
Var concat_rows(const std::vector<Var>& xs);

// ---- embedding lookup

// y[i, :] = table[ids[i], :]    table: (V x E), ids in [0, V) -> (n x E); backward scatters into the used rows
Var gather(Var table, const Ids& ids);

// ---- regularisation

// Inverted dropout: y = x * m / (1 - p), m ~ Bernoulli(1 - p) from rng; 0 <= p < 1 (p = 0 returns x)
Var dropout(Var x, float p, Rng& rng);
// A constant mask of the given shape with entries 0 or 1/(1-p): multiply several values by it to share one
// mask (variational dropout across time steps)
Var dropout_mask(Tape& t, Shape s, float p, Rng& rng);

// ---- softmax and loss

// y = x - logsumexp(x) per row
Var log_softmax(Var x);
// y = exp(x) / sum exp(x) per row (composed: exp(log_softmax(x)))
Var softmax(Var x);

// How cross_entropy reduces over tokens.
enum class Reduction { mean, sum };

// Fused softmax cross-entropy: -log softmax(logits)[i, targets[i]], reduced over the rows whose target is not
// ignore_index (mean divides by their count). logits: (n x V), targets: n ids in [0, V) -> (1 x 1)
Var cross_entropy(Var logits, const Ids& targets, Reduction reduction = Reduction::mean, int ignore_index = -1);

// ---- operator sugar for cells written as expressions

inline Var operator+(Var a, Var b) { return add(a, b); }
inline Var operator-(Var a, Var b) { return sub(a, b); }
inline Var operator*(Var a, Var b) { return mul(a, b); }
inline Var operator-(Var x) { return neg(x); }
inline Var operator*(float c, Var x) { return scale(x, c); }
inline Var operator*(Var x, float c) { return scale(x, c); }
inline Var operator+(Var x, float c) { return add_scalar(x, c); }
inline Var operator+(float c, Var x) { return add_scalar(x, c); }
inline Var operator-(Var x, float c) { return add_scalar(x, -c); }
inline Var operator-(float c, Var x) { return add_scalar(neg(x), c); }

}  // namespace xtgrad
